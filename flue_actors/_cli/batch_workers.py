"""``flue-actors batch --workers N``: one batch in N worker processes of this machine.

A batch in one process runs on one core (its event loop holds the GIL); workers use the others.
The parent reads the inputs, writes the output, draws the progress and holds the batch's rate
limits. Each worker is a process of its own (forked while the command has one thread, else
spawned: see ``_process.worker_context``) with a runtime on the same store, which runs the lines
it is handed as the single-process batch does (``drive_batch``: parsing, keys, admission,
re-attaching) and answers each with its output line as its run ends. Lines go out in chunks as
a worker asks for more, so a faster worker takes more.

- Keys are claimed in the shared store, so a line never has two runs, whichever worker has it.
- A worker that dies has its unanswered lines handed to the others: their keys find the runs it
  admitted, which a surviving worker's lease sweep resumes.
- Every model call of every worker waits on the parent's one budget (``--max-*-per-minute``),
  and a 429 or 529 that any worker meets cools that budget down for all of them.
- A ``kill -9`` of the parent takes the workers with it (``PR_SET_PDEATHSIG``); a rerun
  resumes as after any crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TextIO

from .._process import die_with_parent, forget_parent_signals, worker_context
from .._runtime import Runtime, WorkflowRegistry
from .._runtime.batch import CHUNK, BatchControl, drive_batch
from .._runtime.heap import settle_heap
from ..errors import BatchInputError
from ..models import MinuteBudget, ModelRegistry, Usage, UsageMeter

__all__ = ["WorkerFleet", "WorkerSettings", "describe_lost"]

# Lines handed to a worker at a time; it asks for more when fewer than this are left to it, so
# a worker holds at most two handouts beyond its runs (what it may be left with at the end).
HANDOUT = CHUNK // 2
# How often a worker tells the command how many of its runs are in flight (if that changed).
ACTIVE_REPORT_SECONDS = 0.25


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker is given (picklable: it may cross into a spawned process)."""

    name: str
    workflows: str
    database_url: str | None
    field: str | None
    concurrency: int
    lease_seconds: float
    sweep_seconds: float
    limited: bool


# --- the worker ----------------------------------------------------------------------------


class _Parent:
    """A worker's side of its pipe: the lines it is handed, the answers it sends back, and the
    parent's rate-limit budget (a ``RateLimiter``) for its model calls."""

    def __init__(self, channel: Connection) -> None:
        self._channel = channel
        self._loop = asyncio.get_running_loop()
        self._lines: deque[tuple[int, bytes]] = deque()
        self._arrived = asyncio.Event()
        self._asked = False
        self._ended = False
        self._grants: dict[int, asyncio.Future[None]] = {}
        self._grant_ids = itertools.count()
        self._answers: list[tuple[int, str, bool, bool]] = []
        self._sending: asyncio.Handle | None = None
        self.meter = UsageMeter()
        self.on_stop: Callable[[], None] = lambda: None
        self.on_cancel: Callable[[str], None] = lambda reason: None
        self._loop.add_reader(channel.fileno(), self._receive)

    def send(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: it stops the worker itself
            self._channel.send(message)

    def _receive(self) -> None:
        try:
            while self._channel.poll():
                kind, *rest = self._channel.recv()
                if kind == "lines":
                    self._lines.extend(rest[0])
                    self._asked = False
                elif kind == "end":
                    self._ended = True
                elif kind == "stop":
                    self._ended = True
                    self.on_stop()
                elif kind == "cancel":
                    self.on_cancel(rest[0])
                elif kind == "granted":
                    grant = self._grants.pop(rest[0], None)
                    if grant is not None and not grant.done():
                        grant.set_result(None)
        except (EOFError, OSError):
            self._loop.remove_reader(self._channel.fileno())
            self._ended = True
            self.on_stop()
        self._arrived.set()

    async def lines(self) -> AsyncIterator[tuple[int, bytes, str]]:
        """The lines handed to this worker, asking for more before it runs out."""
        while True:
            if len(self._lines) < HANDOUT and not self._asked and not self._ended:
                self._asked = True
                self.send(("want",))
            if self._lines:
                number, raw = self._lines.popleft()
                yield number, raw, raw.decode("utf-8")  # the parent read it as UTF-8
                continue
            if self._ended:
                return
            self._arrived.clear()
            await self._arrived.wait()

    def answer(self, number: int, line: str, ok: bool, resumed: bool) -> None:
        """Send the output line of ``number`` (batched: one message per loop turn)."""
        self._answers.append((number, line, ok, resumed))
        if self._sending is None:
            self._sending = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._sending = None
        if self._answers:
            answers, self._answers = self._answers, []
            self.send(("done", answers, self.meter.total))

    # RateLimiter: the parent's budget.
    async def acquire(self, input_tokens: int) -> None:
        grant_id = next(self._grant_ids)
        granted = self._grants[grant_id] = self._loop.create_future()
        self.send(("acquire", grant_id, input_tokens))
        await granted

    async def settle(self, input_tokens: int, estimated_input: int, output_tokens: int) -> None:
        self.send(("settle", input_tokens, estimated_input, output_tokens))

    async def cool_down(self, seconds: float) -> None:
        self.send(("cool", seconds))


def _worker_main(
    channel: Connection,
    settings: WorkerSettings,
    parent: int,
    inherited: list[Connection] | None,
) -> None:
    die_with_parent(parent)
    if inherited is not None:  # forked, with the command's ends of the earlier workers' pipes
        forget_parent_signals()
        for connection in inherited:
            connection.close()  # else that worker would not see its pipe close with the command
    # An interrupt is the parent's to decide (a terminal's Ctrl-C reaches every process of the
    # group): it tells each worker to stop admitting, or to cancel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_work(channel, settings))
    finally:
        channel.close()


async def _work(channel: Connection, settings: WorkerSettings) -> None:
    from .batch import _inputs, _output_line  # the single-process batch's own steps

    parent = _Parent(channel)
    models = ModelRegistry.from_environment()
    models.meter = parent.meter
    if settings.limited:
        models.limiter = parent
    control = BatchControl()
    async with Runtime(
        WorkflowRegistry.discover(Path(settings.workflows)),
        models=models,
        store=settings.database_url,
        lease_seconds=settings.lease_seconds,
        sweep_seconds=settings.sweep_seconds,
    ) as runtime:
        providers = runtime.prepare_models()
        # Runs a killed batch or worker left behind are resumed here once their lease expires.
        await runtime.serve()
        settle_heap()  # the worker's process is the command's own (see _runtime.heap)
        cancelling: set[asyncio.Task[None]] = set()

        def stop() -> None:
            control.stop_admitting()
            parent.send(("active", len(control.active)))  # for the cancel message, now

        parent.on_stop = stop

        def cancel(reason: str) -> None:
            cancelling.add(asyncio.ensure_future(control.cancel_active(runtime, reason)))

        parent.on_cancel = cancel
        reporting = asyncio.ensure_future(_report_active(parent, control))
        parent.send(("ready", providers))
        items = _inputs(runtime, settings.name, settings.field, parent.lines(), {})
        async for item in drive_batch(
            runtime,
            runtime.workflow(settings.name),
            items,
            concurrency=settings.concurrency,
            control=control,
        ):
            parent.answer(item.index, _output_line(settings.name, item), item.ok, item.resumed)
        parent.flush()
        reporting.cancel()
        await asyncio.gather(*cancelling, reporting, return_exceptions=True)


async def _report_active(parent: _Parent, control: BatchControl) -> None:
    """The worker's runs in flight, for the command's progress line, when it changes."""
    reported = -1
    while True:
        if len(control.active) != reported:
            reported = len(control.active)
            parent.send(("active", reported))
        await asyncio.sleep(ACTIVE_REPORT_SECONDS)


# --- the parent ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    index: int
    process: BaseProcess
    channel: Connection
    ready: bool = False
    waiting: bool = False  # asked for lines and was given none yet
    ended: bool = False  # told there is nothing more
    gone: bool = False
    # Lines handed over and not answered yet: what another worker takes if this one dies.
    held: dict[int, bytes] = field(default_factory=dict)
    usage: Usage | None = None
    active: int = 0  # its runs in flight, as it last said


class WorkerFleet:
    """``async with WorkerFleet(...) as fleet: await fleet.finished()``: ``count`` workers on
    ``lines`` (those in ``done`` skipped); ``on_ready(providers)`` once every worker has
    started, ``on_answer(output_line)`` as each run ends. Leaving stops whatever still runs."""

    def __init__(
        self,
        settings: WorkerSettings,
        count: int,
        lines: Iterator[tuple[int, bytes, str]],
        done: dict[int, str | None],
        control: BatchControl,
        budget: MinuteBudget | None,
        on_ready: Callable[[list[str]], None],
        on_answer: Callable[[str], None],
    ) -> None:
        self._lines = lines
        self._done = done
        self._control = control
        self._budget = budget
        self._on_ready = on_ready
        self._on_answer = on_answer
        self._loop = asyncio.get_running_loop()
        self._retry: deque[tuple[int, bytes]] = deque()
        self._exhausted = False
        self._all_ready = False
        self._providers: list[str] = []
        self.input_error: BatchInputError | None = None
        self._finished = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        context = worker_context()
        forked = context.get_start_method() == "fork"
        self.workers: list[_Worker] = []
        for index in range(count):
            mine, theirs = context.Pipe(duplex=True)
            # A forked worker holds copies of the command's ends of the earlier workers' pipes.
            inherited = [worker.channel for worker in self.workers] if forked else None
            process = context.Process(
                target=_worker_main,
                args=(theirs, settings, os.getpid(), inherited),
                name=f"flue-batch-worker-{index}",
            )
            process.start()
            theirs.close()
            worker = _Worker(index, process, mine)
            self.workers.append(worker)
            self._loop.add_reader(mine.fileno(), self._receive, worker)

    @property
    def in_flight(self) -> int:
        """Lines handed out and not answered yet (admitted or still queued in a worker)."""
        return sum(len(worker.held) for worker in self.workers)

    @property
    def active(self) -> int:
        """Runs in flight in the workers, as each last said (within a quarter second)."""
        return sum(worker.active for worker in self.workers if not worker.gone)

    @property
    def unanswered(self) -> int:
        """Lines handed out that no worker answered (their workers died with no one left)."""
        return self.in_flight + len(self._retry)

    def usage(self) -> Usage:
        """The model usage of every worker's calls so far (as each last said)."""
        total = UsageMeter().total
        for worker in self.workers:
            if worker.usage is not None:
                total = total + worker.usage
        return total

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        if worker.gone:
            return
        try:
            worker.channel.send(message)
        except OSError:
            self._lose(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            while not worker.gone and worker.channel.poll():
                self._handle(worker, worker.channel.recv())
        except (EOFError, OSError):
            self._lose(worker)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind, *rest = message
        if kind == "done":
            answers, worker.usage = rest
            control = self._control
            for number, line, ok, resumed in answers:
                worker.held.pop(number, None)
                control.done += 1
                control.failed += not ok
                control.resumed += resumed
                self._on_answer(line)
            self._settle()
        elif kind == "active":
            worker.active = rest[0]
        elif kind == "want":
            worker.waiting = True
            self._feed()
        elif kind == "ready":
            worker.ready = True
            self._providers = rest[0]
            self._check_ready()
        elif kind == "acquire":
            self._spawn(self._grant(worker, *rest))
        elif kind == "settle" and self._budget is not None:
            self._spawn(self._budget.settle(*rest))
        elif kind == "cool" and self._budget is not None:
            self._spawn(self._budget.cool_down(*rest))

    def _check_ready(self) -> None:
        """Lines go out once every worker has started (or died trying), so the batch's rate
        counts its runs, not the workers' start-up (as one process's excludes its own)."""
        if self._all_ready or not all(w.ready or w.gone for w in self.workers):
            return
        self._all_ready = True
        if any(w.ready for w in self.workers):
            self._on_ready(self._providers)
        self._feed()

    async def _grant(self, worker: _Worker, grant_id: int, input_tokens: int) -> None:
        if self._budget is not None:
            await self._budget.acquire(input_tokens)
        self._send(worker, ("granted", grant_id))

    def _spawn(self, work: Any) -> None:
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[int, bytes]]:
        chunk: list[tuple[int, bytes]] = []
        while len(chunk) < HANDOUT and self._retry:
            chunk.append(self._retry.popleft())
        while len(chunk) < HANDOUT and not self._exhausted and self._control.admitting:
            try:
                number, raw, _ = next(self._lines)
            except StopIteration:
                self._exhausted = True
            except BatchInputError as error:  # a line that is not UTF-8: admit nothing more
                self.input_error = error
                self._exhausted = True
            else:
                if number not in self._done:
                    chunk.append((number, raw))
        return chunk

    def _feed(self) -> None:
        if not self._all_ready:
            return
        for worker in self.workers:
            if not worker.waiting or worker.gone or worker.ended:
                continue
            chunk = self._take()
            if chunk:
                worker.waiting = False
                worker.held.update(chunk)
                self._control.read += len(chunk)
                self._send(worker, ("lines", chunk))
            elif self.in_flight == 0 or not self._control.admitting:
                # Nothing left anywhere (a line held elsewhere may still come back if its
                # worker dies): this worker ends once its runs have.
                worker.ended = True
                self._send(worker, ("end",))

    def _settle(self) -> None:
        """Hand on what is left, or finish when no worker runs anything."""
        self._feed()
        if all(worker.gone for worker in self.workers):
            self._finished.set()

    def _lose(self, worker: _Worker) -> None:
        if worker.gone:
            return
        worker.gone = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(worker.channel.fileno())
        worker.channel.close()
        # Lines it did not answer go to the others; their keys find the runs it admitted.
        self._retry.extend(worker.held.items())
        self._control.read -= len(worker.held)
        worker.held.clear()
        self._check_ready()
        self._settle()

    def stop_admitting(self) -> None:
        self._control.stop_admitting()
        for worker in self.workers:
            self._send(worker, ("stop",))

    def cancel(self, reason: str) -> None:
        self.stop_admitting()
        for worker in self.workers:
            self._send(worker, ("cancel", reason))

    async def finished(self) -> None:
        """Until every worker has ended (its lines answered, or it died)."""
        await self._finished.wait()

    async def __aenter__(self) -> WorkerFleet:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for worker in self.workers:
            if not worker.gone:
                self._lose(worker)
            worker.process.join(timeout=10)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def describe_lost(fleet: WorkerFleet, err: TextIO) -> None:
    if fleet.unanswered:
        err.write(
            f"error: {fleet.unanswered} lines were not answered (every worker that could take "
            "them ended): run the same command again to finish them\n"
        )
