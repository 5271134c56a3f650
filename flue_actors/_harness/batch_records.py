"""A run's model turn as a batched provider sees it: where the run's log says the turn was
sent (batch records), and how to write down a new one.

A turn that goes through the Message Batches API waits for hours, so its run must be able to
die meanwhile and pick the turn up again. Right after the batch is created the run writes a
batch record, a Flue ``log`` event ``{level: "info", message, attributes: {batch: {id,
customId}}}`` carrying the turn's correlation fields; a resumed run meets it in its replay,
before the turn's ``turn`` event, and re-attaches to that batch instead of submitting again. A
crash between the creation and the record is covered by the custom_id, derived from the run
and turn: the first turn a resumed run performs live looks for it among the batches created
since its log's last event.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Final

from ..models._message_batches import BatchedTurn, current_turn
from .payloads import TurnCorrelation
from .replay import Replay, lane_of, recorded_batches, replay_of

if TYPE_CHECKING:
    from .session_state import SessionState

__all__ = ["BATCH_RECORD_MESSAGE", "CLOCK_SKEW_SECONDS", "batched_turn", "pending_batches"]

BATCH_RECORD_MESSAGE: Final = "model turn waiting on a message batch"
# How far the API's clock (a batch's created_at) may run behind this host's (the log's times)
# while a healing turn still finds the batch it made.
CLOCK_SKEW_SECONDS: Final = 300.0


def pending_batches(
    session: SessionState, turn: TurnCorrelation
) -> tuple[Replay | None, list[tuple[str, str]]]:
    """Before a turn's ``turn`` event is looked for in a replay: the replay, and the batch
    records the log holds for this turn (matched, so they are not written again)."""
    replay = replay_of(session.services.sink)
    return replay, recorded_batches(session.services.sink, turn)


# The context of a turn whose provider does not batch: one shared, reentrant, no-op manager.
_UNBATCHED: Final = nullcontext()


def batched_turn(
    session: SessionState,
    turn: TurnCorrelation,
    replay: Replay | None,
    recorded: list[tuple[str, str]],
    provider: object,
) -> AbstractContextManager[None]:
    """While a turn is performed live: what a batched provider needs to know of it.
    ``replay`` is the replay the run was in before the turn (``None``: live already). Only a
    provider that says it batches turns (``batches_turns``) reads it; for any other, nothing
    is set (no context variable, record function or generator per turn)."""
    if getattr(provider, "batches_turns", False) is not True:
        return _UNBATCHED
    return _batched_turn(session, turn, replay, recorded)


@contextmanager
def _batched_turn(
    session: SessionState,
    turn: TurnCorrelation,
    replay: Replay | None,
    recorded: list[tuple[str, str]],
) -> Iterator[None]:

    def record(batch_id: str, custom_id: str) -> None:
        # A log inside a turn (its turnId says which, and the replay matches it by that),
        # which the session's typed emit, made for Flue's run-level logs, does not take.
        session.services.sink.emit(
            "log",
            {
                "level": "info",
                "message": BATCH_RECORD_MESSAGE,
                "attributes": {"batch": {"id": batch_id, "customId": custom_id}},
                **turn,
            },
        )

    since = None
    resumed = replay if replay is not None else getattr(session.services.sink, "replay", None)
    heal_since = resumed.heal_since(lane_of(turn)) if isinstance(resumed, Replay) else None
    if heal_since is not None:
        # The first turn a session of a resumed run performs live (its replay may have matched
        # every event its log held by then): its batch may have been created after the log's
        # last event (or, with none, after its admission) and before the crash.
        since = heal_since / 1000 - CLOCK_SKEW_SECONDS
    token = current_turn.set(
        BatchedTurn(
            run_id=session.run_id,
            turn_id=turn["turnId"],
            record=record,
            recorded=tuple(recorded),
            since=since,
        )
    )
    try:
        yield
    finally:
        current_turn.reset(token)
