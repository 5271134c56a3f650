"""``flue-actors batch NAME INPUTS.jsonl --output RESULTS.jsonl``: a run per input line.

Every output line is one input line's outcome: ``{"line", "workflow", "key", "runId",
"status", "result" | "error"}``, written as its run ends (completion order). The exit status
is the output's: 1 if any of its lines is a failure, this invocation's or an earlier one's.
Each line's key
(``--key FIELD``, else a hash of the workflow's name and the line) is its run's idempotency key,
so the same command run again after Ctrl-C, a crash or ``kill -9`` skips the lines the output
holds, re-attaches to runs still active and runs the rest: the output ends with one line per
input. The first Ctrl-C stops admitting and lets runs in flight end; a second cancels them.
``--workers N`` runs the lines in N worker processes on the same store (``batch_workers.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TextIO

from .._jsonvalue import dumps, loads
from .._runtime import Runtime, WorkflowRegistry
from .._runtime.backend import BackendFactory
from .._runtime.batch import CHUNK, BatchControl, BatchInput, drive_batch
from .._runtime.batch_item import BatchItem
from .._runtime.heap import settle_loaded
from .._runtime.lease import DEFAULT_LEASE_SECONDS, DEFAULT_SWEEP_SECONDS
from .._runtime.runtime import check_idempotency_key
from ..errors import BatchInputError, FlueError, InvalidJsonError
from ..models import MinuteBudget, ModelBatches, ModelRegistry, RateLimits, Usage, UsageMeter
from ..store import is_memory_url
from .model_batch_options import add_model_batch_options

__all__ = ["add_batch_parser", "report_models_ready", "run_batch_command"]

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
# Without a terminal, a progress line this often.
PLAIN_PROGRESS_SECONDS: Final = 5.0
# On a terminal, the progress line is redrawn this often (rich's refresh rate), not per item.
LIVE_PROGRESS_SECONDS: Final = 0.25
BATCH_PROGRESS_SECONDS: Final = 1.0


def add_batch_parser(commands: Any, positive: Any) -> None:
    batch = commands.add_parser("batch", help="run a workflow once per line of a JSONL file")
    batch.add_argument("name", help="the workflow's name")
    batch.add_argument("inputs", help="the inputs, one JSON value per line (- for stdin)")
    batch.add_argument("--output", required=True, help="the results file (- for stdout)")
    batch.add_argument("--workflows", default="workflows", help="the workflows folder")
    batch.add_argument(
        "--concurrency", type=positive(int), default=256, help="runs active at once (256)"
    )
    batch.add_argument(
        "--key",
        help="the input field whose value is each line's key (default: a hash of the workflow "
        "name and the line); keys make a rerun resume",
    )
    batch.add_argument(
        "--force", action="store_true", help="overwrite an output file of a different batch"
    )
    for kind, unit in (
        ("requests", "model requests"),
        ("input-tokens", "input tokens"),
        ("output-tokens", "output tokens"),
    ):
        batch.add_argument(
            f"--max-{kind}-per-minute",
            type=positive(float),
            help=f"at most this many {unit} per minute over every run of the batch",
        )
    batch.add_argument(
        "--backend",
        choices=["local", "ray"],
        default=None,
        help="where runs execute, as serve (default: local, or ray when --address or "
        "FLUE_RAY_ADDRESS is given)",
    )
    batch.add_argument("--address", help="the Ray cluster to attach to, as serve")
    batch.add_argument(
        "--workers",
        type=positive(int),
        default=1,
        help="worker processes on this machine, each with runs of its own on the same store "
        "(local backend; default 1)",
    )
    batch.add_argument(
        "--lease-seconds", type=positive(float), default=DEFAULT_LEASE_SECONDS, help="as serve"
    )
    batch.add_argument(
        "--sweep-seconds", type=positive(float), default=DEFAULT_SWEEP_SECONDS, help="as serve"
    )
    add_model_batch_options(batch)


def _line_key(workflow: str, field: str | None, line: bytes, value: Any) -> str:
    if field is None:
        digest = hashlib.sha256(workflow.encode() + b"\x00" + line.strip()).hexdigest()
        return "sha256:" + digest
    if not isinstance(value, dict) or field not in value:
        raise BatchInputError(f'The input has no field "{field}" to use as its key.')
    found = value[field]
    if found is None or isinstance(found, (dict, list)):
        raise BatchInputError(f'The key field "{field}" is not a string or number.')
    return check_idempotency_key(found if isinstance(found, str) else json.dumps(found))


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes, str]]:
    """Numbered non-blank lines, decoded; a line that is not UTF-8 is refused by number."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BatchInputError(
                f"Line {number} of the inputs is not UTF-8 (byte {error.start}).",
                details="The inputs must be UTF-8 JSON, one value per line.",
            ) from None
        if text.strip():
            yield number, raw, text


def _parse(number: int, text: str) -> Any:
    try:
        return loads(text)
    except (json.JSONDecodeError, ValueError, RecursionError) as error:
        raise InvalidJsonError(parse_error=str(error), subject=f"Line {number}") from None


def _done_lines(output: Path, name: str) -> tuple[dict[int, str | None], int]:
    """The lines the output already answers (line -> key), and how many of them failed; a last
    line cut short by a crash is dropped from the file. Lines of another workflow refuse the
    file."""
    done: dict[int, str | None] = {}
    failed = 0
    with output.open("rb+") as file:
        data_end = 0
        for raw in file:
            if not raw.endswith(b"\n"):
                break
            data_end += len(raw)
            try:
                entry = json.loads(raw)
                line, workflow, key = entry["line"], entry["workflow"], entry.get("key")
            except (ValueError, KeyError, TypeError):
                raise BatchInputError(
                    f"{output} is not the output of a batch.",
                    details="Pass --force to overwrite it, or choose another --output.",
                ) from None
            if workflow != name:
                raise BatchInputError(
                    f"{output} holds results of workflow {workflow!r}, not {name!r}.",
                    details="Pass --force to overwrite it, or choose another --output.",
                )
            done[int(line)] = key
            if entry.get("status") != "completed":
                failed += 1
        file.truncate(data_end)
    return done, failed


def _check_same_batch(
    inputs: Path, name: str, field: str | None, done: dict[int, str | None]
) -> int:
    """Read the inputs once before anything runs: refuse non-UTF-8 lines and an output whose
    lines do not match these inputs' keys. Returns the number of inputs."""
    count = 0
    seen = 0
    with inputs.open("rb") as stream:
        for number, raw, text in _lines(stream):
            count += 1
            if number not in done:
                continue
            seen += 1
            try:
                key: str | None = _line_key(name, field, raw, _parse(number, text))
            except FlueError:
                key = None if field is not None else _line_key(name, None, raw, None)
            if done[number] != key:
                raise BatchInputError(
                    f"The output holds a different batch: its line {number} is for another input.",
                    details="Pass --force to overwrite it, or choose another --output.",
                )
    if seen != len(done):
        raise BatchInputError(
            "The output holds a different batch: it answers lines these inputs do not have.",
            details="Pass --force to overwrite it, or choose another --output.",
        )
    return count


async def _stream_lines(stream: IO[bytes]) -> AsyncIterator[tuple[int, bytes, str]]:
    for line in _lines(stream):
        yield line


async def _inputs(
    runtime: Runtime,
    name: str,
    field: str | None,
    lines: AsyncIterator[tuple[int, bytes, str]],
    done: dict[int, str | None],
) -> AsyncIterator[BatchInput]:
    async for number, raw, text in lines:
        if number in done:
            continue
        item = BatchInput(number)
        try:
            value = _parse(number, text)
            item.key = _line_key(name, field, raw, value)
            item.value = runtime.check_input(name, value)
        except FlueError as error:
            item.refusal = error
            if item.key is None and field is None:
                item.key = _line_key(name, None, raw, None)
        yield item
        if number % CHUNK == 0:
            await asyncio.sleep(0)  # a large file must not hold the loop between chunks


class _Progress:
    """A rich progress bar on a terminal (rich is imported only here), else plain lines."""

    def __init__(
        self,
        err: TextIO,
        control: BatchControl,
        usage: Callable[[], Usage | None] | None,
        total: int | None,
        skipped: int,
        active: Callable[[], int] | None = None,
    ):
        self._err = err
        self._control = control
        self._usage = usage
        self._active = active or (lambda: len(control.active))
        self._total = total
        self._skipped = skipped
        self._started = time.monotonic()
        self._last_drawn = self._started
        self._live: Any = None
        # The model-batch collector's counters (with --model-batches), refreshed meanwhile.
        self.batches: dict[str, int] | None = None
        if err.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=err), refresh_per_second=4, transient=True)
            self._live.start()

    def line(self) -> str:
        control = self._control
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = control.done / elapsed
        total = "" if self._total is None else f"/{self._total - self._skipped}"
        eta = ""
        if self._total is not None and rate > 0:
            left = self._total - self._skipped - control.done
            eta = f"  eta {max(left, 0) / rate:.0f}s"
        usage = None if self._usage is None else self._usage()
        return (
            f"done {control.done}{total}  failed {control.failed}  active {self._active()}"
            f"  {rate:.1f} runs/s{eta}{_tokens(usage, '  ')}{_batch_counts(self.batches)}"
        )

    def tick(self) -> None:
        now = time.monotonic()
        every = PLAIN_PROGRESS_SECONDS if self._live is None else LIVE_PROGRESS_SECONDS
        if now - self._last_drawn < every:
            return
        self._last_drawn = now
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(self.line()))
            return
        self._err.write(self.line() + "\n")
        self._err.flush()

    def close(self) -> float:
        if self._live is not None:
            self._live.stop()
        return time.monotonic() - self._started


@dataclass(frozen=True)
class _Batch:
    """One invocation of the command, as each way of running it (here, or on workers) sees it:
    its arguments, its files, its counters and limits, what the output already answers."""

    args: argparse.Namespace
    stream: IO[bytes]
    sink: IO[str]
    control: BatchControl
    limits: RateLimits
    done: dict[int, str | None]
    failed_before: int  # lines of the output an earlier invocation wrote for failed items
    total: int | None  # the input's lines, when it is a file
    err: TextIO


async def run_batch_command(
    args: argparse.Namespace, workflows: WorkflowRegistry, out: TextIO, err: TextIO
) -> int:
    name: str = args.name
    workflows.get(name)  # an unknown workflow is refused before anything is read
    address = args.address or os.environ.get("FLUE_RAY_ADDRESS") or None
    on_ray = (args.backend or ("ray" if address else "local")) == "ray"
    if address and not on_ray:
        err.write("error: --address needs --backend ray\n")
        return EXIT_USAGE
    refusal = _workers_refusal(args, on_ray)
    if refusal is not None:
        err.write(f"error: {refusal}\n")
        return EXIT_USAGE
    done: dict[int, str | None] = {}
    # Lines of the output an earlier invocation wrote for failed items: the batch failed.
    failed_before = 0
    output_path = None if args.output == "-" else Path(args.output)
    total: int | None = None
    if output_path is not None and output_path.exists() and output_path.stat().st_size:
        try:
            if not args.force:
                done, failed_before = _done_lines(output_path, name)
        except BatchInputError:
            if not args.force:
                raise
        if args.force:
            output_path.write_bytes(b"")
    if args.inputs == "-":
        if done:
            raise BatchInputError(
                "Resuming a batch reads its inputs twice: pass them as a file, not stdin.",
                details="Or pass --force to start the output over.",
            )
        stream: IO[bytes] = sys.stdin.buffer
    else:
        inputs_path = Path(args.inputs)
        total = _check_same_batch(inputs_path, name, args.key, done)
        stream = inputs_path.open("rb")  # noqa: ASYNC230 (read line by line, as runs free up)
    sink: IO[str] = out
    if output_path is not None:
        sink = output_path.open("a", encoding="utf-8")
    limits = RateLimits(
        args.max_requests_per_minute,
        args.max_input_tokens_per_minute,
        args.max_output_tokens_per_minute,
    )
    batch = _Batch(args, stream, sink, BatchControl(), limits, done, failed_before, total, err)
    try:
        if args.workers > 1:
            return await _batch_on_workers(batch)
        return await _batch_here(batch, workflows, on_ray, address)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        if sink is not out:
            sink.close()


async def _batch_here(
    batch: _Batch, workflows: WorkflowRegistry, on_ray: bool, address: str | None
) -> int:
    """The batch's runs in this process's runtime (local backend, or handed to Ray hosts)."""
    name: str = batch.args.name
    interrupted: list[signal.Signals] = []
    batch_counts: dict[str, int] | None = None
    budget: MinuteBudget | None = None
    meter: UsageMeter | None = None
    # On Ray the model calls are made in the hosts: they count them under this batch's name,
    # and their totals are asked for once its runs have ended.
    hosts_meter: str | None = None
    usage: Usage | None = None
    models: ModelRegistry | None = None
    backend: BackendFactory | None = None
    if on_ray:
        from .._runtime.ray import RayCluster  # Ray is imported only when it is used

        # The hosts' model calls share one budget of the cluster (see RayCluster).
        backend = RayCluster(address, rate_limits=batch.limits if batch.limits.any else None)
        hosts_meter = f"batch-{os.urandom(8).hex()}"
    else:
        # One limiter for every run of the batch (they all run in this process).
        budget = MinuteBudget(batch.limits) if batch.limits.any else None
        models = ModelRegistry.from_environment()
        models.limiter = budget
        # Tokens and cost as the model calls return: what this invocation spent (a run
        # resumed by replay does not pay again for the turns its log holds: not counted).
        meter = models.meter = UsageMeter()
    throttled_before: dict[str, float] | None = None
    throttled: tuple[float, int] | None = None
    async with Runtime(
        workflows,
        models=models,
        backend=backend,
        store=batch.args.database_url,
        lease_seconds=batch.args.lease_seconds,
        sweep_seconds=batch.args.sweep_seconds,
    ) as runtime:
        if not on_ray:  # on Ray the hosts call the models, not this process
            report_models_ready(runtime.prepare_models(), batch.err)
        # Runs a killed batch left behind are resumed (or, recovery="fail", ended) by the
        # lease sweep, so re-attaching to them never waits forever.
        await runtime.serve()
        # What the backend or the model providers loaded as they started (Ray, as it
        # connected; the Anthropic SDK) lives as long as the batch: out of the collector's
        # passes, as the rest of the settled heap is.
        settle_loaded()
        if on_ray and batch.limits.any:
            throttled_before = await _cluster_budget(runtime)
        loop = asyncio.get_running_loop()
        cancelling: set[asyncio.Task[None]] = set()

        def cancel(reason: str) -> None:
            cancelling.add(loop.create_task(batch.control.cancel_active(runtime, reason)))

        _on_interrupts(
            batch.err,
            interrupted,
            batch.control.stop_admitting,
            cancel,
            lambda: len(batch.control.active),
        )
        progress = _Progress(batch.err, batch.control, _totals(meter), batch.total, len(batch.done))
        following = (
            loop.create_task(_follow_batches(runtime, progress, batch.args.model_batches))
            if batch.args.model_batches
            else None
        )
        writer = _LineWriter(batch.sink)

        try:
            items = _inputs(runtime, name, batch.args.key, _stream_lines(batch.stream), batch.done)
            async for item in drive_batch(
                runtime,
                runtime.workflow(name),
                items,
                concurrency=batch.args.concurrency,
                control=batch.control,
                model_batches=batch.args.model_batches or None,
                meter=hosts_meter,
            ):
                writer.write(_output_line(name, item))
                progress.tick()
        finally:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
                batch_counts = await runtime.model_batch_progress(batch.args.model_batches)
            writer.close()
            elapsed = progress.close()
            if budget is not None:
                throttled = (budget.throttled_seconds, budget.cooldowns)
            elif throttled_before is not None:
                # The cluster's budget is shared by every batch of these workflows and limits:
                # this batch's share is what it counted meanwhile.
                after = await _cluster_budget(runtime) or throttled_before
                # (Less than before: the budget's actor exited, idle, and was made again.)
                throttled = (
                    max(0.0, after["throttled_seconds"] - throttled_before["throttled_seconds"]),
                    max(0, int(after["cooldowns"] - throttled_before["cooldowns"])),
                )
            if hosts_meter is not None:
                usage = await runtime.backend.batch_usage(hosts_meter)  # type: ignore[attr-defined]
            _off_interrupts()
    if meter is not None:
        usage = meter.total
    _summary(batch, usage, elapsed, throttled, batch_counts)
    return _exit_status(interrupted, batch)


def _exit_status(interrupted: list[signal.Signals], batch: _Batch) -> int:
    """130 after an interrupt; else the output's status: 1 if any of its lines failed, this
    invocation's or an earlier one's."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if batch.control.failed or batch.failed_before else 0


def _totals(meter: UsageMeter | None) -> Callable[[], Usage | None] | None:
    """What a progress line shows of ``meter``: its totals as they are when drawn."""
    if meter is None:
        return None
    return lambda: meter.total


def _workers_refusal(args: argparse.Namespace, on_ray: bool) -> str | None:
    if args.workers == 1:
        return None
    if on_ray:
        return "--workers needs the local backend (on Ray, runs spread over the cluster's hosts)"
    if args.database_url is not None and is_memory_url(args.database_url):
        return "--workers needs a store the workers share: an in-memory SQLite store is not"
    if args.model_batches:
        return "--model-batches collects the turns of one process's runs: use one worker"
    return None


def _on_interrupts(
    err: TextIO,
    interrupted: list[signal.Signals],
    stop: Callable[[], None],
    cancel: Callable[[str], None],
    active: Callable[[], int],
) -> None:
    """The first SIGINT/SIGTERM stops admitting, the second cancels the runs in flight, a
    third exits at once."""

    def interrupt(signum: signal.Signals) -> None:
        interrupted.append(signum)
        if len(interrupted) == 1:
            err.write(f"\n{signum.name}: admitting no more; waiting for runs in flight\n")
            stop()
        elif len(interrupted) == 2:
            err.write(f"\n{signum.name}: cancelling {active()} runs\n")
            cancel(f"Interrupted by {signum.name}.")
        else:
            os._exit(EXIT_INTERRUPTED)

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, signum)


def _off_interrupts() -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)


class _LineWriter:
    """Output lines, flushed once per loop turn for every line written in it, not per line."""

    def __init__(self, sink: IO[str]) -> None:
        self._sink = sink
        self._flushing: asyncio.Handle | None = None

    def write(self, line: str) -> None:
        self._sink.write(line)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = None
        self._sink.flush()

    def close(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            self._flush()


async def _batch_on_workers(batch: _Batch) -> int:
    """``--workers N``: the lines run in N worker processes (``batch_workers``); this process
    reads them, writes the output and holds the rate limits."""
    from .batch_workers import WorkerFleet, WorkerSettings, describe_lost

    settings = WorkerSettings(
        name=batch.args.name,
        workflows=str(batch.args.workflows),
        database_url=batch.args.database_url,
        field=batch.args.key,
        concurrency=max(1, -(-batch.args.concurrency // batch.args.workers)),
        lease_seconds=batch.args.lease_seconds,
        sweep_seconds=batch.args.sweep_seconds,
        limited=batch.limits.any,
    )
    budget = MinuteBudget(batch.limits) if batch.limits.any else None
    interrupted: list[signal.Signals] = []
    writer = _LineWriter(batch.sink)
    progress: _Progress | None = None
    started: list[bool] = []

    def ready(providers: list[str]) -> None:
        nonlocal progress
        report_models_ready(providers, batch.err)
        started.append(True)
        progress = _Progress(
            batch.err,
            batch.control,
            fleet.usage,
            batch.total,
            len(batch.done),
            lambda: fleet.active,
        )

    def answered(line: str) -> None:
        writer.write(line)
        if progress is not None:
            progress.tick()

    async with WorkerFleet(
        settings,
        batch.args.workers,
        _lines(batch.stream),
        batch.done,
        batch.control,
        budget,
        ready,
        answered,
    ) as fleet:
        _on_interrupts(
            batch.err, interrupted, fleet.stop_admitting, fleet.cancel, lambda: fleet.active
        )
        try:
            await fleet.finished()
        finally:
            _off_interrupts()
            writer.close()
    elapsed = progress.close() if progress is not None else 0.0
    throttled = None if budget is None else (budget.throttled_seconds, budget.cooldowns)
    _summary(batch, fleet.usage(), elapsed, throttled)
    if interrupted:
        return EXIT_INTERRUPTED
    if not started:
        batch.err.write("error: every worker ended before it started (see above)\n")
        return EXIT_FAILED
    if fleet.input_error is not None:
        raise fleet.input_error
    if fleet.unanswered:
        describe_lost(fleet, batch.err)
        return EXIT_FAILED
    return _exit_status(interrupted, batch)


async def _cluster_budget(runtime: Runtime) -> dict[str, float] | None:
    """The counters of the rate-limit budget the Ray hosts share (see ``RayBackend``)."""
    stats: dict[str, float] | None = await runtime.backend.rate_limit_stats()  # type: ignore[attr-defined]
    return stats


def _tokens(usage: Usage | None, separator: str) -> str:
    """Tokens and cost so far (on Ray they are counted in the hosts and known at the end:
    the summary shows them, the progress line does not)."""
    if usage is None:
        return ""
    return (
        f"{separator}tokens {usage.input} in / {usage.output} out{separator}"
        f"cost ${usage.cost.total:.4f}"
    )


def report_models_ready(providers: list[str], err: IO[str]) -> None:
    """The line ``batch`` and ``serve`` write once their model providers are ready."""
    if providers:
        err.write(f"model providers ready: {', '.join(providers)}\n")


def _batch_counts(counts: dict[str, int] | None) -> str:
    if counts is None:
        return ""
    return (
        f"  model turns {counts['submitted']} submitted, {counts['waiting']} waiting,"
        f" {counts['done']} done in {counts['batches']} batches"
    )


async def _follow_batches(runtime: Runtime, progress: _Progress, settings: ModelBatches) -> None:
    """Keep the progress's model-batch counters current (a turn waits for minutes or hours:
    the progress must show it moving)."""
    while True:
        progress.batches = await runtime.model_batch_progress(settings)
        progress.tick()
        await asyncio.sleep(BATCH_PROGRESS_SECONDS)


def _output_line(name: str, item: BatchItem) -> str:
    return dumps({"line": item.index, "workflow": name, **item.to_wire()}) + "\n"


def _summary(
    batch: _Batch,
    usage: Usage | None,
    elapsed: float,
    throttled: tuple[float, int] | None,
    batch_counts: dict[str, int] | None = None,
) -> None:
    control = batch.control
    rate = control.done / elapsed if elapsed > 0 else 0.0
    earlier_failures = f", {batch.failed_before} of them failed" if batch.failed_before else ""
    held = ""
    if throttled is not None:
        held = f"; throttled {throttled[0]:.1f}s ({throttled[1]} cool-downs)"
    batch.err.write(
        f"batch: {control.done - control.failed} completed, {control.failed} failed"
        f" ({control.resumed} found from an earlier batch, {len(batch.done)} already in the output"
        f"{earlier_failures})"
        f" in {elapsed:.1f}s, {rate:.1f} runs/s{_tokens(usage, '; ')}{held}"
        + (
            ""
            if batch_counts is None
            else f"; {batch_counts['submitted']} model turns in {batch_counts['batches']}"
            " message batches"
        )
        + "\n"
    )
    batch.err.flush()
