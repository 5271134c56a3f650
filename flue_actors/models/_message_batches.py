"""Model turns through Anthropic's Message Batches API: half the price, answered within hours.

A run's agent loop is unchanged: its provider's ``complete`` hands the turn's Messages API body
to a :class:`TurnBatcher` and waits. The batcher collects the turns of every participating run
over a window (a count, a size and a time), submits them as one Message Batch (a ``custom_id``
per turn), polls it with backoff and routes each result back to the turn waiting on it; the
loop then runs its tool calls and sends its next turn, which joins a later batch. So a
three-turn agent takes three batch rounds.

:class:`MessageBatchCollector` is the batcher of one process. Hosts of a Ray cluster share one
through the Ray backend's named actor, which implements the same :class:`TurnBatcher`
protocol; nothing here knows Ray.

A turn waits in two steps (:meth:`TurnBatcher.enqueue`, then :meth:`TurnBatcher.result`) so
that its run can write the batch id and ``custom_id`` to its log in between; a run resumed after
a crash re-attaches to that batch (``result`` polls a batch it did not submit) instead of
submitting again, and a custom_id derived from the run and turn (:func:`turn_custom_id`) lets it
find a batch created just before the crash, before the record (``enqueue(..., since=)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import ModelRequestError
from ._retry import Sleep

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchedResult",
    "BatchedTurn",
    "MessageBatchCollector",
    "ModelBatches",
    "TurnBatcher",
    "current_turn",
    "turn_custom_id",
]

# The API's limits per batch: 100,000 requests or 256 MB, whichever comes first.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
# Room for the envelope around each request ({"custom_id": ..., "params": ...}).
_ENVELOPE_BYTES = 96
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ModelBatches:
    """How model turns go through the Message Batches API.

    A batch is submitted once ``max_requests`` turns (or ``max_bytes`` of requests) are waiting,
    or ``window`` seconds after the first of them began to wait (``math.inf``: by count and
    size alone). It is polled after
    ``poll_interval`` seconds, then at doubling intervals up to ``max_poll_interval``. A turn
    whose request expired, was canceled or failed transiently inside a batch is sent again up
    to ``retries`` times: in the next batch, or with ``fallback="messages"`` through the
    Messages API at full price. ``sleep`` waits (tests inject one that does not)."""

    max_requests: int = 10_000
    window: float = 5.0
    max_bytes: int = MAX_BATCH_BYTES
    poll_interval: float = 10.0
    max_poll_interval: float = 120.0
    retries: int = 2
    fallback: Literal["batch", "messages"] = "batch"
    sleep: Sleep | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests <= MAX_BATCH_REQUESTS:
            raise ValueError(f"max_requests is between 1 and {MAX_BATCH_REQUESTS}")
        if not 1 <= self.max_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_bytes is between 1 and {MAX_BATCH_BYTES}")
        if self.window < 0 or self.poll_interval < 0:
            raise ValueError("window and poll_interval are seconds, not negative")
        if self.max_poll_interval < self.poll_interval:
            raise ValueError("max_poll_interval is at least poll_interval")
        if self.retries < 0:
            raise ValueError("retries is not negative")
        if self.fallback not in ("batch", "messages"):
            raise ValueError("fallback is 'batch' or 'messages'")

    async def wait(self, seconds: float) -> None:
        await (self.sleep or asyncio.sleep)(seconds)

    def to_wire(self) -> dict[str, Any]:
        """The settings as JSON (a run's header carries them: every life of the run batches its
        turns alike). ``sleep`` stays behind; an infinite window is ``None``."""
        wire: dict[str, Any] = {
            "maxRequests": self.max_requests,
            "window": None if math.isinf(self.window) else self.window,
            "maxBytes": self.max_bytes,
            "pollInterval": self.poll_interval,
            "maxPollInterval": self.max_poll_interval,
            "retries": self.retries,
            "fallback": self.fallback,
        }
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ModelBatches:
        window = wire.get("window")
        return cls(
            max_requests=int(wire["maxRequests"]),
            window=math.inf if window is None else float(window),
            max_bytes=int(wire["maxBytes"]),
            poll_interval=float(wire["pollInterval"]),
            max_poll_interval=float(wire["maxPollInterval"]),
            retries=int(wire["retries"]),
            fallback=wire["fallback"],
        )

    @property
    def digest(self) -> str:
        """A short name for these settings (``sleep`` aside): a collector per settings."""
        text = json.dumps(self.to_wire(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class BatchedResult:
    """One turn's result: the batch and ``custom_id`` it had, and the API's result object
    (``{"type": "succeeded", "message": {...}}``, ``errored`` with its ``error``,
    ``canceled`` or ``expired``), as plain JSON so it crosses process boundaries."""

    batch_id: str
    custom_id: str
    result: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.result.get("type"))


class TurnBatcher(Protocol):
    """Takes turns into batches and hands back their results, in two steps so a run can write
    down where its turn went (the batch id) before it waits: :meth:`enqueue` returns once the
    turn's batch has been created, :meth:`result` once that batch has ended. ``result`` also
    re-attaches to a batch this batcher did not submit (a turn resumed after a crash)."""

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], *, since: float | None = None
    ) -> str: ...

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult: ...

    async def progress(self) -> dict[str, int]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Waiting:
    custom_id: str
    params: dict[str, Any]
    size: int
    future: asyncio.Future[str]  # the batch id, once its batch has been created


class MessageBatchCollector:
    """The :class:`TurnBatcher` of one process: collects, submits, polls, routes.

    ``client`` gives the SDK client (the Anthropic provider's, so its key, base URL and
    transport are used). ``custom_ids`` makes the ids :meth:`submit` uses (unique within a
    batch; by default a per-collector prefix and a counter). ``batches`` counts the batches
    submitted, ``submitted`` the turns they carried."""

    def __init__(
        self,
        client: Callable[[], AsyncAnthropic],
        settings: ModelBatches | None = None,
        *,
        custom_ids: Callable[[], str] | None = None,
    ) -> None:
        self._client = client
        self.settings = settings or ModelBatches()
        self._custom_ids = custom_ids or _counted_ids()
        self._pending: deque[_Waiting] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._polling: set[asyncio.Task[None]] = set()
        # Every batch this collector polls (its own, and those re-attached to): its results
        # by custom_id once it has ended. One poll per batch, however many turns wait on it.
        self._outcomes: dict[str, asyncio.Future[dict[str, dict[str, Any]]]] = {}
        # The custom_ids of the batches this collector created (a healing turn need not wait
        # for those to end to know whether its request is in one).
        self._carried: dict[str, frozenset[str]] = {}
        self.batches = 0
        self.submitted = 0
        self._awaiting = 0
        self.done = 0

    async def submit(self, params: dict[str, Any]) -> BatchedResult:
        """One turn, both steps, under a custom_id of this collector's own."""
        custom_id = self._custom_ids()
        batch_id = await self.enqueue(custom_id, params)
        return await self.result(batch_id, custom_id)

    async def enqueue(
        self, custom_id: str, params: dict[str, Any], *, since: float | None = None
    ) -> str:
        """Put a turn in the next batch; the batch's id once it has been created.

        ``since`` (seconds since the epoch) heals a crash between a batch's creation and the
        run's record of it: the batches created since then are searched for ``custom_id``
        first (waiting for those still processing to end, since only results name their
        requests), and the one that holds it is returned instead of submitting again."""
        if not _CUSTOM_ID.fullmatch(custom_id):
            raise ModelRequestError(
                f"custom_id {custom_id!r} is not 1-64 letters, digits, '-' or '_'.",
                code="invalid_request_error",
            )
        if since is not None:
            found = await self._find(custom_id, since)
            if found is not None:
                return found
        size = len(json.dumps(params)) + _ENVELOPE_BYTES
        if size > self.settings.max_bytes:
            raise ModelRequestError(
                f"A model turn of {size} bytes does not fit in a message batch "
                f"(at most {self.settings.max_bytes} bytes).",
                code="batch_request_too_large",
            )
        waiting = _Waiting(custom_id, params, size, asyncio.get_running_loop().create_future())
        self._pending.append(waiting)
        self._pending_bytes += size
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        self._wake.set()
        try:
            return await waiting.future
        except asyncio.CancelledError:
            # A turn aborted before its batch went out leaves it; one already submitted
            # cannot be taken back, and its result is dropped when it comes.
            if waiting in self._pending:
                self._pending.remove(waiting)
                self._pending_bytes -= waiting.size
            raise

    async def result(self, batch_id: str, custom_id: str) -> BatchedResult:
        """The result of ``custom_id`` in batch ``batch_id``, once the batch has ended
        (polled here if this collector did not submit it). A request the results lack is
        ``expired``, so it is sent again."""
        outcome = self._outcomes.get(batch_id)
        if outcome is None:
            outcome = self._adopt(batch_id)
        self._awaiting += 1
        try:
            results = await asyncio.shield(outcome)
        finally:
            self._awaiting -= 1
        self.done += 1
        # Each result is handed out once and then forgotten, and so is a batch once all its
        # results are: a collector's memory holds what is still to be collected, no more.
        result = results.pop(custom_id, None) or {"type": "expired", "missing": True}
        if not results and self._outcomes.get(batch_id) is outcome:
            del self._outcomes[batch_id]
            self._carried.pop(batch_id, None)
        return BatchedResult(batch_id, custom_id, result)

    async def progress(self) -> dict[str, int]:
        """Turns waiting to go out, turns in batches still processing, turns answered, and
        batches and turns submitted so far."""
        return {
            "pending": len(self._pending),
            "waiting": self._awaiting,
            "done": self.done,
            "submitted": self.submitted,
            "batches": self.batches,
        }

    async def aclose(self) -> None:
        """Stop collecting and polling. Turns still waiting get an error; batches already
        submitted are left to end on the API's side (their results are not collected)."""
        tasks = [task for task in (self._flusher, *self._polling) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._flusher = None
        closed = ModelRequestError("The model batch collector was closed.", code="batch_closed")
        while self._pending:
            waiting = self._pending.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(closed)
        for outcome in self._outcomes.values():
            if not outcome.done():
                outcome.set_exception(closed)
                outcome.exception()  # retrieved: nobody may be waiting on it
        self._pending_bytes = 0

    # --- collecting -------------------------------------------------------------------------------

    def _full(self) -> bool:
        return (
            len(self._pending) >= self.settings.max_requests
            or self._pending_bytes >= self.settings.max_bytes
        )

    async def _flush_loop(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._full():
                await self._window()
            taken = self._take()
            if taken:
                self._spawn(self._create(taken))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._polling.add(task)
        task.add_done_callback(self._polling.discard)

    async def _window(self) -> None:
        """Wait until the window closes or the batch is full, whichever comes first (an
        infinite window: until full)."""
        window = self.settings.window
        closes: asyncio.Future[Any] = (
            asyncio.get_running_loop().create_future()
            if math.isinf(window)
            else asyncio.ensure_future(self.settings.wait(window))
        )
        try:
            while not self._full() and not closes.done():
                self._wake.clear()
                woken: asyncio.Future[Any] = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait((closes, woken), return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            closes.cancel()

    def _take(self) -> list[_Waiting]:
        taken: list[_Waiting] = []
        size = 0
        while self._pending and len(taken) < self.settings.max_requests:
            waiting = self._pending[0]
            if taken and size + waiting.size > self.settings.max_bytes:
                break
            self._pending.popleft()
            self._pending_bytes -= waiting.size
            if waiting.future.done():
                continue
            taken.append(waiting)
            size += waiting.size
        return taken

    # --- one batch --------------------------------------------------------------------------------

    async def _create(self, taken: list[_Waiting]) -> None:
        from ._anthropic import map_error

        try:
            client = self._client()
            requests = [{"custom_id": w.custom_id, "params": w.params} for w in taken]
            batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except Exception as error:
            failure = error if isinstance(error, ModelRequestError) else map_error(error)
            for waiting in taken:
                if not waiting.future.done():
                    waiting.future.set_exception(failure)
            return
        self.batches += 1
        self.submitted += len(taken)
        self._carried[batch.id] = frozenset(w.custom_id for w in taken)
        # A healing search may have adopted it already, between its creation and now.
        outcome = self._outcomes.setdefault(batch.id, asyncio.get_running_loop().create_future())
        for waiting in taken:
            if not waiting.future.done():
                waiting.future.set_result(batch.id)
        await self._poll(client, batch, outcome)

    def _adopt(self, batch_id: str) -> asyncio.Future[dict[str, dict[str, Any]]]:
        """Poll a batch this collector learns of from a run's log (or a search)."""
        outcome: asyncio.Future[dict[str, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._outcomes[batch_id] = outcome

        async def adopt() -> None:
            from ._anthropic import map_error

            client = self._client()
            try:
                batch = await self._retrieve(client, batch_id)
            except Exception as error:
                if not outcome.done():
                    mapped = error if isinstance(error, ModelRequestError) else map_error(error)
                    outcome.set_exception(mapped)
                return
            await self._poll(client, batch, outcome)

        self._spawn(adopt())
        return outcome

    async def _poll(
        self,
        client: AsyncAnthropic,
        batch: Any,
        outcome: asyncio.Future[dict[str, dict[str, Any]]],
    ) -> None:
        """Resolve ``outcome`` (the future its waiters hold, whatever ``_outcomes`` holds by
        then) with the batch's results once it has ended."""
        from ._anthropic import map_error

        try:
            delay = self.settings.poll_interval
            while batch.processing_status != "ended":
                await self.settings.wait(delay)
                delay = min(delay * 2, self.settings.max_poll_interval)
                batch = await self._retrieve(client, batch.id)
            results = await self._results(client, batch.id)
        except Exception as error:
            if not outcome.done():
                mapped = error if isinstance(error, ModelRequestError) else map_error(error)
                outcome.set_exception(mapped)
                # A failed poll is tried again by the next turn that asks for this batch.
                if self._outcomes.get(batch.id) is outcome:
                    del self._outcomes[batch.id]
            return
        if not outcome.done():
            outcome.set_result(results)

    async def _find(self, custom_id: str, since: float) -> str | None:
        """The batch created at or after ``since`` whose results hold ``custom_id``."""
        client = self._client()
        candidates: list[str] = []
        async for batch in client.messages.batches.list(limit=100):
            if batch.created_at.timestamp() < since:
                break  # newest first: the rest are older still
            candidates.append(batch.id)
        for batch_id in candidates:
            carried = self._carried.get(batch_id)
            if carried is not None:
                if custom_id in carried:
                    return batch_id
                continue
            outcome = self._outcomes.get(batch_id) or self._adopt(batch_id)
            if custom_id in await asyncio.shield(outcome):
                return batch_id
        return None

    async def _retrieve(self, client: AsyncAnthropic, batch_id: str) -> Any:
        """The batch, asked again after a transient failure (a poll is idempotent)."""
        from ._anthropic import map_error

        delay = self.settings.poll_interval
        while True:
            try:
                return await client.messages.batches.retrieve(batch_id)
            except Exception as error:
                mapped = map_error(error)
                if not mapped.transient:
                    raise mapped from error
                await self.settings.wait(max(delay, mapped.retry_after or 0.0))
                delay = min(delay * 2, self.settings.max_poll_interval)

    async def _results(self, client: AsyncAnthropic, batch_id: str) -> dict[str, dict[str, Any]]:
        from ._anthropic import map_error

        delay = self.settings.poll_interval
        while True:
            try:
                results: dict[str, dict[str, Any]] = {}
                async for line in await client.messages.batches.results(batch_id):
                    results[line.custom_id] = line.result.to_dict(mode="json")
                return results
            except Exception as error:
                mapped = map_error(error)
                if not mapped.transient:
                    raise mapped from error
                await self.settings.wait(max(delay, mapped.retry_after or 0.0))
                delay = min(delay * 2, self.settings.max_poll_interval)


def turn_custom_id(run_id: str, turn_id: str, attempt: int) -> str:
    """The custom_id of a run's model turn, sent for the ``attempt``-th time (0 first): the
    same in every life of the run, so a resumed run can find a request it made before a
    crash, and unique across runs, turns and attempts. At most 64 characters, as the API
    requires."""
    digest = hashlib.sha256(f"{run_id}\x00{turn_id}\x00{attempt}".encode()).hexdigest()
    return f"flue-{digest[:40]}-{attempt}"


@dataclass(frozen=True, slots=True)
class BatchedTurn:
    """What a batched provider needs to know about the run turn it answers: the run and turn
    (for the custom_id), the batch records the run's log already holds for this turn (oldest
    first: re-attach to the last instead of submitting), ``since`` when the turn is the first
    one a resumed run performs live (a batch created before the crash may hold it), and
    ``record``, which writes a batch record to the run's log."""

    run_id: str
    turn_id: str
    record: Callable[[str, str], None]
    recorded: tuple[tuple[str, str], ...] = ()
    since: float | None = None


current_turn: ContextVar[BatchedTurn | None] = ContextVar("flue_batched_turn", default=None)


def _counted_ids() -> Callable[[], str]:
    # A prefix per collector, so ids of two collectors (two processes) never meet in a log.
    prefix = os.urandom(4).hex()
    counter = itertools.count(1)

    def next_id() -> str:
        return f"turn-{prefix}-{next(counter)}"

    return next_id
