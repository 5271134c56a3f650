"""The batch loop: many independent runs of one workflow, admitted in bulk as runs free up.

Inputs are read by one task into a small queue, so at most a chunk of them is held at a time
whatever the source's size. The admitter takes what is queued, up to the free slots and
``CHUNK``, and admits it in one call (``Runtime._admit``: one store transaction locally, one Ray
call per host and chunk on Ray). Each admitted run's terminal record comes from its owner as it
ends (its task locally, the chunk's call on Ray), or, when the owner cannot say (its host
died), from the log; its item is yielded then, in completion order. A key already used finds
its earlier run: a finished one answers at once, an active one is awaited (re-attached), so a
batch run again after a crash finishes only what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .._jsonvalue import UNSET, JsonValue, Unset
from .._records import RunRecord
from ..errors import BatchInputError, FlueError
from ..models import ModelBatches
from .batch_item import BatchItem
from .discovery import DiscoveredWorkflow

if TYPE_CHECKING:
    from .runtime import RunReceipt, Runtime

__all__ = ["CHUNK", "BatchControl", "BatchInput", "drive_batch", "run_batch"]

# Runs admitted together at most (one store transaction; the Ray backend's hand-over size).
CHUNK: Final = 256


@dataclass(slots=True)
class BatchInput:
    """One input on its way in: its position, checked value and key, or why it cannot run."""

    index: int
    value: JsonValue | Unset = UNSET
    key: str | None = None
    refusal: FlueError | None = None


@dataclass
class BatchControl:
    """Counters a caller can show while a batch runs, and the two ways to stop it early."""

    admitting: bool = True
    cancelling: bool = False
    read: int = 0
    done: int = 0
    failed: int = 0
    resumed: int = 0
    active: set[str] = field(default_factory=set)
    _stop: asyncio.Event | None = None

    def stop_admitting(self) -> None:
        """Admit nothing more; runs already admitted go on to their end."""
        self.admitting = False
        if self._stop is not None:
            self._stop.set()

    async def cancel_active(self, runtime: Runtime, reason: str) -> None:
        """Stop admitting and cancel every run still active (each ends ``run_cancelled``)."""
        self.stop_admitting()
        self.cancelling = True
        await asyncio.gather(
            *(runtime.cancel(run_id, reason) for run_id in list(self.active)),
            return_exceptions=True,
        )


def _key_function(
    key: str | Callable[[Any], str | None] | None,
) -> Callable[[Any], str | None] | None:
    if key is None or callable(key):
        return key
    field_name = key

    def of_field(value: Any) -> str | None:
        if not isinstance(value, Mapping) or field_name not in value:
            raise BatchInputError(f'The input has no field "{field_name}" to use as its key.')
        found = value[field_name]
        if found is None or isinstance(found, (dict, list)):
            raise BatchInputError(f'The key field "{field_name}" is not a string or number.')
        return found if isinstance(found, str) else str(found)

    return of_field


async def _python_inputs(
    runtime: Runtime,
    entry: DiscoveredWorkflow,
    inputs: Iterable[Any] | AsyncIterable[Any],
    key: str | Callable[[Any], str | None] | None,
) -> AsyncIterator[BatchInput]:
    from .runtime import check_idempotency_key

    key_of = _key_function(key)

    def checked(index: int, value: Any) -> BatchInput:
        item = BatchInput(index)
        try:
            found = None if key_of is None else key_of(value)
            item.key = None if found is None else check_idempotency_key(found)
            item.value = runtime.check_input(entry.name, value)
        except FlueError as error:
            item.refusal = error
        return item

    index = 0
    if isinstance(inputs, AsyncIterable):
        async for value in inputs:
            yield checked(index, value)
            index += 1
    else:
        for value in inputs:
            yield checked(index, value)
            index += 1


def run_batch(
    runtime: Runtime,
    entry: DiscoveredWorkflow,
    inputs: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int,
    key: str | Callable[[Any], str | None] | None,
    model_batches: ModelBatches | None = None,
) -> AsyncIterator[BatchItem]:
    """``Runtime.batch``: plain inputs, checked and keyed here, through :func:`drive_batch`."""
    items = _python_inputs(runtime, entry, inputs, key)
    return drive_batch(runtime, entry, items, concurrency=concurrency, model_batches=model_batches)


_END: Final = object()


async def drive_batch(
    runtime: Runtime,
    entry: DiscoveredWorkflow,
    inputs: AsyncIterator[BatchInput],
    *,
    concurrency: int,
    control: BatchControl | None = None,
    model_batches: ModelBatches | None = None,
    meter: str | None = None,
) -> AsyncIterator[BatchItem]:
    """Admit ``inputs`` as slots free up (at most ``concurrency`` runs active) and yield each
    item when its run ends. An error reading the inputs stops admission; the runs already
    admitted are awaited and yielded, then the error is raised. ``model_batches``: the runs'
    own (``Runtime.batch``); ``meter``: a name for this batch under which the Ray backend's
    hosts count its runs' model usage (``RayBackend.batch_usage``)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if model_batches is not None:
        # Made here, so this process's runs take these settings as given (an injected sleep
        # included) rather than as their headers spell them.
        runtime.services.batched_models(model_batches)
    control = control or BatchControl()
    control._stop = stop = asyncio.Event()
    if not control.admitting:
        stop.set()
    queued: asyncio.Queue[Any] = asyncio.Queue(maxsize=CHUNK)
    results: asyncio.Queue[Any] = asyncio.Queue()
    freed = asyncio.Event()
    free = concurrency
    tasks: set[asyncio.Task[Any]] = set()
    # How the runs this batch admitted ended, as their owners report it (see RunBackend).
    endings: dict[str, asyncio.Future[RunRecord | bool]] = {}
    unfinished = 0  # items taken from the queue and not yet yielded

    def spawn(work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def release() -> None:
        nonlocal free
        free += 1
        freed.set()

    async def read() -> None:
        try:
            async for item in inputs:
                await queued.put(item)
            await queued.put(_END)
        except Exception as error:  # not a cancellation: nobody would take it off a full queue
            await queued.put(error)

    async def finish(item: BatchInput, receipt: RunReceipt) -> None:
        run_id = receipt.run_id
        control.active.add(run_id)
        released = False
        try:
            # Its end as its owner reported it; a run the owner could not report (its host
            # died, another writer ended it), or found by its key, is followed through the log.
            ending = endings.pop(run_id, None)
            ended = None if ending is None else await ending
            record = ended if isinstance(ended, RunRecord) else await runtime.wait(run_id)
            control.active.discard(run_id)
            release()
            released = True
            results.put_nowait(BatchItem(item.index, item.key, record, resumed=not receipt.created))
        except Exception as error:
            results.put_nowait(error)
        finally:
            if not released:
                control.active.discard(run_id)
                release()

    async def admit(chunk: list[BatchInput]) -> None:
        try:
            outcomes = await runtime._admit(
                entry,
                [(item.value, item.key) for item in chunk],
                model_batches=model_batches,
                meter=meter,
                endings=endings,
            )
        except Exception as error:
            outcomes = [error if isinstance(error, FlueError) else _failed(entry, error)] * len(
                chunk
            )
        for item, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, FlueError):
                results.put_nowait(BatchItem(item.index, item.key, refusal=outcome))
                release()
            else:
                spawn(finish(item, outcome))

    async def next_item() -> Any:
        """The next queued input, or ``_END`` once admission is stopped."""
        if stop.is_set():
            return _END
        if not queued.empty():  # the common case: no futures, no wait
            return queued.get_nowait()
        getting = asyncio.ensure_future(queued.get())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if getting.done():
            return getting.result()
        getting.cancel()
        return _END

    async def admit_all() -> None:
        nonlocal free, unfinished
        ended = False
        while not ended:
            item = await next_item()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            unfinished += 1
            control.read += 1
            if item.refusal is not None:
                results.put_nowait(BatchItem(item.index, item.key, refusal=item.refusal))
                continue
            while free == 0 and not stop.is_set():
                freed.clear()
                waiting = asyncio.ensure_future(freed.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                stopping.cancel()
            if stop.is_set():
                unfinished -= 1  # read but never admitted: it has no line
                control.read -= 1
                break
            chunk = [item]
            # What is queued already goes along, up to the free slots: no waiting for more.
            while len(chunk) < min(CHUNK, free) and not queued.empty():
                more = queued.get_nowait()
                if more is _END:
                    ended = True
                    break
                if isinstance(more, BaseException):
                    await queued.put(more)  # raised at the next turn, after this chunk
                    break
                unfinished += 1
                control.read += 1
                if more.refusal is not None:
                    results.put_nowait(BatchItem(more.index, more.key, refusal=more.refusal))
                    continue
                chunk.append(more)
            free -= len(chunk)
            # Shielded: a chunk whose admission began is admitted and awaited in full.
            admission = asyncio.ensure_future(admit(chunk))
            tasks.add(admission)
            admission.add_done_callback(tasks.discard)
            await asyncio.shield(admission)

    reader = asyncio.get_running_loop().create_task(read())
    admitter = asyncio.get_running_loop().create_task(admit_all())
    admitter.add_done_callback(lambda _: results.put_nowait(_END))
    failure: BaseException | None = None
    admitting = True
    try:
        while admitting or unfinished > 0:
            outcome = await results.get()
            if outcome is _END:
                admitting = False
                if admitter.exception() is not None:
                    failure = admitter.exception()
                if unfinished == 0:
                    break
                continue
            if isinstance(outcome, BaseException):
                failure = failure or outcome
                unfinished -= 1
                continue
            unfinished -= 1
            control.done += 1
            if not outcome.ok:
                control.failed += 1
            if outcome.resumed:
                control.resumed += 1
            yield outcome
            if not admitting and unfinished == 0:
                break
    finally:
        reader.cancel()
        admitter.cancel()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(reader, admitter, *tasks, return_exceptions=True)
        retire = getattr(runtime.backend, "retire_model_batches", None)
        if model_batches is not None and retire is not None:
            with contextlib.suppress(Exception):  # a collector left idle is harmless
                await retire(model_batches)
    if failure is not None:
        raise failure


def _failed(entry: DiscoveredWorkflow, error: Exception) -> FlueError:
    from ..errors import WorkflowAdmissionFailedError

    return WorkflowAdmissionFailedError(workflow=entry.name, reason=str(error))
