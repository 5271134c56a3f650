"""Ending runs whose owner is gone, so that no run stays ``active`` forever.

Flue's Cloudflare target does this when a Durable Object restarts (``failRecoveredRun``): a run
that already has ``run_end`` is only reconciled (its stream closed); any other gets ``run_resume``
then an errored ``run_end`` saying it was interrupted. Here the same happens when a host dies.
The append is fenced by the expected sequence, so a host that was only presumed dead (and is
still writing) either wins the race, and recovery looks again, or is refused from then on.

A cancellation that no live owner can take (its owner is gone, or unreachable from the process
asked) ends the run the same way, with ``run_cancelled`` instead of ``run_interrupted``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from .._clock import Clock, parse_timestamp
from .._events import RunAdmittedEvent, error_payload
from ..errors import (
    FlueError,
    RunCancelledError,
    RunInterruptedError,
    StreamClosedError,
    StreamConflictError,
)
from ..store import EventStore, StreamMeta, run_stream
from .run_stream import RunStream

__all__ = [
    "end_cancelled_run",
    "end_interrupted_run",
    "end_orphaned_runs",
    "end_run_as",
    "end_unstarted_run",
]

logger = logging.getLogger("flue_actors.recovery")
_ATTEMPTS = 5


async def _last_event_index(store: EventStore, run_id: str, meta: StreamMeta) -> tuple[int, bool]:
    """The highest eventIndex in the stream, and whether a run_end is among the events."""
    last, ended, offset = -1, False, "-1"
    while True:
        page = await store.read(run_stream(run_id), offset=offset, limit=1000)
        for event in page.events:
            data = event.data
            last = max(last, int(data.get("eventIndex", -1)))
            ended = ended or data.get("type") == "run_end"
        offset = page.next_offset
        if page.up_to_date or not page.events:
            return last, ended


async def end_unstarted_run(
    store: EventStore, header: RunAdmittedEvent, clock: Clock, error: BaseException
) -> None:
    """End a run that never started anywhere (its hand-over failed, or a draining host refused
    it) with only an errored ``run_end``, as Flue does when scheduling fails. Fenced: raises
    ``StreamConflictError``/``StreamClosedError`` if someone else wrote to it meanwhile."""
    now = clock.now_ms()
    end = {
        "runId": header["runId"],
        "result": None,
        "isError": True,
        "error": error_payload(error),
        "durationMs": max(0, now - parse_timestamp(header["startedAt"])),
    }
    await RunStream(store, header["runId"], clock).end("run_end", end, at_ms=now)


async def end_interrupted_run(store: EventStore, run_id: str, clock: Clock) -> bool:
    """End ``run_id`` as interrupted. ``False`` if it had already ended (or does not exist)."""
    return await end_run_as(store, run_id, clock, RunInterruptedError())


async def end_cancelled_run(store: EventStore, run_id: str, clock: Clock, reason: str) -> bool:
    """End ``run_id`` as cancelled without its owner. ``False`` if it had already ended."""
    return await end_run_as(store, run_id, clock, RunCancelledError(run_id=run_id, reason=reason))


async def end_run_as(store: EventStore, run_id: str, clock: Clock, error: FlueError) -> bool:
    """End ``run_id`` from outside its owner: ``run_resume``, then an errored ``run_end``
    carrying ``error``, fenced. ``False`` if it had already ended (or does not exist)."""
    path = run_stream(run_id)
    for _ in range(_ATTEMPTS):
        record = await store.get_run(run_id)
        meta = await store.stream_meta(path)
        if record is None or meta is None:
            return False
        last_index, ended = await _last_event_index(store, run_id, meta)
        if ended or record.is_terminal:
            if not meta.closed:
                await store.close_stream(path)  # a crash between run_end and the close
            return False
        stream = RunStream(store, run_id, clock, next_seq=meta.length, next_index=last_index + 1)
        stream.emit(
            "run_resume",
            {"runId": run_id, "workflowName": record.workflow_name, "startedAt": record.started_at},
        )
        await stream.flush()
        ended_ms = clock.now_ms()
        end = {
            "runId": run_id,
            "result": None,
            "isError": True,
            "error": error_payload(error),
            "durationMs": max(0, ended_ms - parse_timestamp(record.started_at)),
        }
        try:
            await stream.end("run_end", end, at_ms=ended_ms)
            return True
        except StreamConflictError:
            continue  # its owner was still writing: look again
        except StreamClosedError:
            return False
    logger.error("run %s: could not be ended after %d attempts", run_id, _ATTEMPTS)
    return False


async def end_orphaned_runs(
    store: EventStore,
    clock: Clock,
    *,
    stale_before_ms: int,
    owner: str | None = None,
    resume: Callable[[str, str | None], Awaitable[bool | None]] | None = None,
    spare: Collection[str] = (),
) -> list[str]:
    """End every orphaned run (see ``EventStore.orphaned_runs``); returns the ones ended.
    With ``resume``, each orphan is offered to it first, with the owner found gone:
    ``resume(run_id, previous)``, ``True`` meaning it took the run over from ``previous`` (or
    its owner, or another process, has it), which is then left alone; ``None`` that it could
    not be handed over now (every host that could take it is restarting), so it is left for
    the next sweep: ending it would lose a run that resumes. Runs owned by an owner in
    ``spare`` (the sweeping process's own, alive however late their heartbeat) are never
    touched."""
    orphans = await store.orphaned_runs(stale_before_ms=stale_before_ms, owner=owner)
    # Swept for one owner (a host found dead), every orphan is its: no read per run.
    owners = (
        dict.fromkeys(orphans, owner)
        if owner is not None
        else {run_id: await store.owner_of(run_id) for run_id in orphans}
    )
    if resume is not None and orphans:
        # Still orphaned now that their owners are known: a run another process took over
        # since the first look has an owner that heartbeats, and is left to it. (Read the
        # other way round, a sweep could take a run from the process that just resumed it.)
        still = set(await store.orphaned_runs(stale_before_ms=stale_before_ms, owner=owner))
        orphans = [run_id for run_id in orphans if run_id in still]
    ended = []
    for run_id in orphans:
        if spare and owners[run_id] in spare:
            continue
        if resume is not None:
            try:
                taken = await resume(run_id, owners[run_id])
            except Exception as error:  # it can still be ended, which is the next best thing
                logger.error("run %s could not be resumed: %s", run_id, error)
                taken = False
            if taken:
                logger.warning("run %s: its owner was silent; it goes on by replay", run_id)
                continue
            if taken is None:
                logger.warning(
                    "run %s: no host can take it over now; left for the next sweep", run_id
                )
                continue
        if await end_interrupted_run(store, run_id, clock):
            logger.warning("run %s was interrupted (its owner is gone) and has been ended", run_id)
            ended.append(run_id)
    if owner is None:
        # Owners silent this long with nothing left active are gone for good: forget them.
        await store.prune_owners(stale_before_ms=stale_before_ms)
    return ended
