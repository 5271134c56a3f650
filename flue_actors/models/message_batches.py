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

Waiting turns live in memory: a process that dies loses them (its runs end as interrupted runs
do) and the batch it submitted is left to expire unused. Re-attaching a restarted run to its
pending batch needs the batch id and ``custom_id`` in the run's log (durable runs).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import ModelRequestError
from .retry import Sleep

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "BatchedResult",
    "MessageBatchCollector",
    "ModelBatches",
    "TurnBatcher",
]

# The API's limits per batch: 100,000 requests or 256 MB, whichever comes first.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
# Room for the envelope around each request ({"custom_id": ..., "params": ...}).
_ENVELOPE_BYTES = 96


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
    """Takes one turn's Messages API body, returns its result once its batch has ended."""

    async def submit(self, params: dict[str, Any]) -> BatchedResult: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Waiting:
    custom_id: str
    params: dict[str, Any]
    size: int
    future: asyncio.Future[BatchedResult]


class MessageBatchCollector:
    """The :class:`TurnBatcher` of one process: collects, submits, polls, routes.

    ``client`` gives the SDK client (the Anthropic provider's, so its key, base URL and
    transport are used). ``custom_ids`` makes the ids (unique within a batch; by default a
    per-collector prefix and a counter). ``batches`` counts the batches submitted."""

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
        self.batches = 0
        self.submitted = 0

    async def submit(self, params: dict[str, Any]) -> BatchedResult:
        size = len(json.dumps(params)) + _ENVELOPE_BYTES
        if size > self.settings.max_bytes:
            raise ModelRequestError(
                f"A model turn of {size} bytes does not fit in a message batch "
                f"(at most {self.settings.max_bytes} bytes).",
                code="batch_request_too_large",
            )
        waiting = _Waiting(
            self._custom_ids(), params, size, asyncio.get_running_loop().create_future()
        )
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
                task = asyncio.create_task(self._run_batch(taken))
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

    async def _run_batch(self, taken: list[_Waiting]) -> None:
        from .anthropic import map_error

        try:
            client = self._client()
            requests = [{"custom_id": w.custom_id, "params": w.params} for w in taken]
            batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            self.batches += 1
            self.submitted += len(taken)
            batch_id = batch.id
            delay = self.settings.poll_interval
            while batch.processing_status != "ended":
                await self.settings.wait(delay)
                delay = min(delay * 2, self.settings.max_poll_interval)
                batch = await self._retrieve(client, batch_id)
            results = await self._results(client, batch_id)
        except ModelRequestError as error:
            _fail(taken, error)
            return
        except Exception as error:
            _fail(taken, map_error(error))
            return
        for waiting in taken:
            if waiting.future.done():
                continue
            result = results.get(waiting.custom_id)
            if result is None:
                result = {"type": "expired", "missing": True}
            waiting.future.set_result(BatchedResult(batch_id, waiting.custom_id, result))

    async def _retrieve(self, client: AsyncAnthropic, batch_id: str) -> Any:
        """The batch, asked again after a transient failure (a poll is idempotent)."""
        from .anthropic import map_error

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
        from .anthropic import map_error

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


def _counted_ids() -> Callable[[], str]:
    # A prefix per collector, so ids of two collectors (two processes) never meet in a log.
    prefix = os.urandom(4).hex()
    counter = itertools.count(1)

    def next_id() -> str:
        return f"turn-{prefix}-{next(counter)}"

    return next_id


def _fail(taken: list[_Waiting], error: ModelRequestError) -> None:
    for waiting in taken:
        if not waiting.future.done():
            waiting.future.set_exception(error)
