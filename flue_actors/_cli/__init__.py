"""``flue-actors``: run workflows and inspect runs from the shell.

Exit codes: 0 success; 1 a failed run or a refused request (bad input, unknown workflow, ...);
2 a malformed command line; 130 interrupted (SIGINT), 143 terminated (SIGTERM). An interrupted
run is cancelled and ended before the command exits, so it never stays active.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .._jsonvalue import UNSET, dumps, loads
from .._records import RUN_STATUSES
from .._runtime import BackendFactory, LocalBackend, RunServices, Runtime, WorkflowRegistry
from .._runtime.heap import settle_heap
from .._runtime.lease import DEFAULT_LEASE_SECONDS, DEFAULT_SWEEP_SECONDS
from ..errors import FlueError, InvalidJsonError, InvalidRequestError, RunNotFoundError
from ..models._anthropic import TRANSPORT_VARIABLE
from ..store import is_memory_url, is_offset, resolve_database_url
from .batch import add_batch_parser, report_models_ready, run_batch_command
from .hosts import add_hosts_parser, run_hosts
from .model_batch_options import add_model_batch_options, model_batches_from
from .presenter import EventPresenter
from .remote import parse_header, request_headers, run_remote

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
# What a shell reports for a command that SIGPIPE ended: the reader of its output went away.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flue-actors", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        help="the event store (default: $FLUE_DATABASE_URL, else sqlite:///.flue/flue.db)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a workflow and print its result")
    run.add_argument("name", help="the workflow's name (its file name in the workflows folder)")
    run.add_argument("--input", help="the input, as JSON (omit for no input)")
    run.add_argument("--workflows", default="workflows", help="the workflows folder")
    run.add_argument(
        "--server",
        metavar="URL",
        help="run it on this running server (flue-actors serve, or Flue) instead of here",
    )
    run.add_argument(
        "--header",
        action="append",
        default=[],
        type=parse_header,
        metavar="'NAME: VALUE'",
        help="a request header for --server (repeatable; the last value of a name wins)",
    )

    serve = commands.add_parser("serve", help="serve the workflows over HTTP (Flue's protocol)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workflows", default="workflows", help="the workflows folder")
    serve.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="larger request bodies get 413"
    )
    serve.add_argument(
        "--backend",
        choices=["local", "ray"],
        default=None,
        help="where runs execute (default: local, or ray when --address or FLUE_RAY_ADDRESS "
        "is given); ray without an address starts a local Ray instance that ends with the server",
    )
    serve.add_argument(
        "--address", help="attach to this Ray cluster (auto: the one `ray start` made here)"
    )
    _seconds = _positive(float)
    serve.add_argument(
        "--lease-seconds",
        type=_seconds,
        default=DEFAULT_LEASE_SECONDS,
        help="a run whose owner has not heartbeated for this long is orphaned: resumed by "
        "replay here (or ended, run_interrupted, if its workflow says recovery='fail'); "
        f"at least 3 (default {DEFAULT_LEASE_SECONDS:g})",
    )
    serve.add_argument(
        "--sweep-seconds",
        type=_seconds,
        default=DEFAULT_SWEEP_SECONDS,
        help="how often to look for such runs; an orphaned run is taken over within lease + "
        f"sweep seconds (default {DEFAULT_SWEEP_SECONDS:g})",
    )
    serve.add_argument(
        "--keep-alive-seconds",
        type=_seconds,
        default=5.0,
        help="close a keep-alive connection idle this long (default 5)",
    )
    serve.add_argument(
        "--read-timeout",
        type=_seconds,
        default=10.0,
        help="a request head must arrive, and a body must not stall, within this many seconds "
        "(default 10; a late head gets 408)",
    )
    serve.add_argument(
        "--limit-connections",
        type=_positive(int),
        default=1000,
        help="with this many connections open, new requests get 503 at once (default 1000)",
    )
    serve.add_argument(
        "--graceful-seconds",
        type=_seconds,
        default=10.0,
        help="on SIGTERM: open requests and runs hosted here get this long before runs are "
        "ended run_interrupted and the server exits (default 10)",
    )
    serve.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        help="serve from this many processes on one socket, each running its runs, all "
        "sharing the store (a SQLite file or PostgreSQL; local backend only; default 1)",
    )
    add_model_batch_options(serve)

    runs = commands.add_parser("runs", help="inspect stored runs")
    verbs = runs.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="list runs, newest first")
    listing.add_argument("--json", action="store_true", help="print the page as JSON")
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--workflow", help="only runs of this workflow")
    listing.add_argument("--limit", type=int, help="runs per page (default 100, at most 1000)")
    listing.add_argument("--cursor", help="the next page's cursor from a previous listing")
    get = verbs.add_parser("get", help="print a run's record as JSON")
    get.add_argument("run_id")
    events = verbs.add_parser("events", help="print a run's events, one JSON object per line")
    events.add_argument("run_id")
    events.add_argument("--offset", default="-1", help="start strictly after this offset")
    verbs.add_parser("rebuild", help="refold every run record from the event log")
    recover = verbs.add_parser(
        "recover",
        help="take over runs whose owner is gone (a crashed process or a lost node): resume "
        "them here by replay until they end, or end them",
    )
    recover.add_argument(
        "--workflows",
        default="workflows",
        help="the workflows folder (runs of workflows "
        "not in it, or with recovery='fail', are ended)",
    )
    recover.add_argument(
        "--end", action="store_true", help="end every orphan (run_interrupted), resume none"
    )
    recover.add_argument(
        "--lease-seconds",
        type=_positive(float),
        default=DEFAULT_LEASE_SECONDS,
        help=f"an owner silent this long is gone (default {DEFAULT_LEASE_SECONDS:g})",
    )
    add_hosts_parser(commands)
    add_batch_parser(commands, _positive)
    return parser


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _report(error: BaseException, err: TextIO) -> None:
    if isinstance(error, FlueError):
        err.write(f"error: {error.message}\n  type: {error.type}\n")
        if error.details:
            err.write("".join(f"  {line}\n" for line in error.details.splitlines()))
        if error.dev:
            err.write("".join(f"  {line}\n" for line in error.dev.splitlines()))
    else:
        err.write(f"error: {error}\n")


def _parse_input(text: str | None) -> Any:
    if text is None:
        return UNSET
    try:
        return loads(text)
    except json.JSONDecodeError as error:
        raise InvalidJsonError(parse_error=str(error), subject="--input") from None


async def _run(
    args: argparse.Namespace, workflows: WorkflowRegistry, out: TextIO, err: TextIO
) -> int:
    value = _parse_input(args.input)
    async with Runtime(workflows, store=args.database_url) as runtime:
        value = runtime.check_input(args.name, value)
        receipt = await runtime.invoke(args.name, value)
        err.write(f"workflow {receipt.workflow_name}\n")
        received: list[signal.Signals] = []
        cancelling: set[asyncio.Task[bool]] = set()
        loop = asyncio.get_running_loop()

        def interrupt(signum: signal.Signals) -> None:
            if received:
                os._exit(EXIT_SIGNAL[signum])  # a second signal: stop waiting for the run
            received.append(signum)
            err.write(f"\n{signum.name}: cancelling run {receipt.run_id}\n")
            reason = f"Interrupted by {signum.name}."
            cancelling.add(loop.create_task(runtime.cancel(receipt.run_id, reason)))

        for signum in EXIT_SIGNAL:
            loop.add_signal_handler(signum, interrupt, signum)
        try:
            presenter = EventPresenter(err, color=err.isatty())
            async for stored in runtime.follow(receipt.run_id):
                presenter.show(stored.data)
            record = await runtime.wait(receipt.run_id)
        finally:
            for signum in EXIT_SIGNAL:
                loop.remove_signal_handler(signum)
        if received:
            return EXIT_SIGNAL[received[0]]
        if record.status != "completed":
            return EXIT_FAILED
        if record.result is not UNSET and record.result is not None:
            out.write(dumps(record.result) + "\n")
        return 0


def _resumable(args: argparse.Namespace) -> WorkflowRegistry | None:
    """The workflows ``runs recover`` resumes orphans of (``None``: it ends them all)."""
    directory = Path(args.workflows)
    if args.end or not directory.is_dir():
        return None
    return WorkflowRegistry.discover(directory)


async def _recover(
    args: argparse.Namespace, workflows: WorkflowRegistry | None, out: TextIO, err: TextIO
) -> int:
    """``runs recover``: every orphan is taken over, resumed here by replay until it ends (its
    workflow in ``--workflows``, with ``recovery="resume"``) or ended ``run_interrupted``."""
    resume = workflows is not None
    async with Runtime(workflows or {}, store=args.database_url) as runtime:
        taken = await runtime.recover(lease_seconds=args.lease_seconds, resume=resume)
        ended = 0
        for run_id in taken:
            record = await runtime.wait(run_id)
            out.write(f"{run_id}\n")
            out.flush()
            ended += bool(record.error and record.error.get("type") == "run_interrupted")
    if args.end:
        err.write(f"ended {ended} orphaned runs\n")
    else:
        err.write(f"resumed {len(taken) - ended} and ended {ended} orphaned runs\n")
    return 0


async def _runs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # No workflows: these commands read and repair the log, they run nothing.
    async with Runtime({}, store=args.database_url) as runtime:
        if args.verb == "list":
            page = await runtime.list_runs(
                status=args.status,
                workflow_name=args.workflow,
                limit=args.limit,
                cursor=args.cursor,
            )
            if args.json:
                out.write(dumps(page.to_wire()) + "\n")
                return 0
            out.write(
                f"{'RUN ID':<30}  {'WORKFLOW':<16}  {'STATUS':<9}  {'STARTED':<24}  DURATION\n"
            )
            for run in page.runs:
                duration = f"{run.duration_ms} ms" if run.duration_ms is not None else "-"
                out.write(
                    f"{run.run_id:<30}  {run.workflow_name:<16}  {run.status:<9}  "
                    f"{run.started_at:<24}  {duration}\n"
                )
            if page.next_cursor:
                err.write(f"more: flue-actors runs list --cursor {page.next_cursor}\n")
            return 0
        if args.verb == "get":
            record = await runtime.get_run(args.run_id)
            if record is None:
                raise RunNotFoundError(run_id=args.run_id)
            out.write(dumps(record.to_wire(), indent=2) + "\n")
            return 0
        if args.verb == "events":
            return await _events(runtime, args, out)
        rebuilt = await runtime.rebuild_records()
        err.write(f"rebuilt {rebuilt} run records from the log\n")
        return 0


async def _events(runtime: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    if not is_offset(args.offset):
        raise InvalidRequestError(reason="Invalid offset format.")
    if await runtime.stream_meta(args.run_id) is None:
        raise RunNotFoundError(run_id=args.run_id)
    async for event in runtime.follow(args.run_id, offset=args.offset, live=False):
        out.write(event.raw + "\n")
    return 0


def _serve(args: argparse.Namespace, err: TextIO, *, long_lived: bool = False) -> int:
    directory = Path(args.workflows)
    if not directory.is_dir():
        err.write(f"error: workflow folder {directory} does not exist (use --workflows DIR)\n")
        return EXIT_FAILED
    workflows = WorkflowRegistry.discover(directory)
    for name, failure in workflows.failures.items():
        err.write(f"warning: workflow {name} is not served: {failure.message}\n")
    if long_lived:
        _settle_process()
    address = args.address or os.environ.get("FLUE_RAY_ADDRESS") or None
    kind = args.backend or ("ray" if address else "local")
    if kind == "local" and address:
        err.write("error: --address needs --backend ray\n")
        return EXIT_USAGE
    if args.workers > 1 and kind == "ray":
        err.write(
            "error: --workers needs the local backend (on Ray, runs execute on the cluster's "
            "hosts, not in the server's processes)\n"
        )
        return EXIT_USAGE
    if args.workers > 1 and is_memory_url(args.database_url):
        err.write(
            "error: --workers needs a store the workers share: an in-memory SQLite store is "
            "private to each process (use a SQLite file or PostgreSQL)\n"
        )
        return EXIT_USAGE
    try:
        model_batches_from(args)
    except ValueError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    recovery = (
        f"orphaned runs are resumed or ended within {args.lease_seconds + args.sweep_seconds:g} s"
    )
    served = f"serving {', '.join(workflows.names) or 'no workflows'} on {args.host}:{args.port}"

    def started(ended: list[str], workers: str = "") -> None:
        if ended:
            err.write(f"ended {len(ended)} runs whose owner had gone (run_interrupted)\n")
        err.write(f"{served} ({workers}{recovery})\n")
        err.flush()

    args.backend, args.address = kind, address
    if args.workers == 1:
        _serve_here(args, workflows, [], started)
        return 0
    from ..gateway._server import ServeOptions
    from ..gateway._workers import serve_workers

    return serve_workers(
        functools.partial(_serve_worker, args),
        workers=args.workers,
        host=args.host,
        port=args.port,
        backlog=ServeOptions.backlog,
        on_started=lambda pids, ended: started(
            ended, f"{len(pids)} workers: pids {', '.join(map(str, pids))}; "
        ),
        err=err,
    )


def _serve_worker(
    args: argparse.Namespace,
    sockets: list[socket.socket],
    report: Callable[[list[str]], None],
) -> None:
    """One worker of ``serve --workers N``, in a process of its own (``gateway._workers``)."""
    workflows = WorkflowRegistry.discover(Path(args.workflows))
    settle_heap()  # a worker's process is the server's: long-lived, see _runtime.heap
    _serve_here(args, workflows, sockets, report)


def _worker_backend(
    services: RunServices, *, database_url: str | None, models_given: bool
) -> LocalBackend:
    """A ``serve --workers`` worker's backend: a cancellation often lands on another worker
    than the one hosting the run, so its runs are watched for an end from elsewhere."""
    return LocalBackend(services, watch_ended_elsewhere=True)


def _serve_here(
    args: argparse.Namespace,
    workflows: WorkflowRegistry,
    sockets: list[socket.socket],
    on_started: Callable[[list[str]], None],
) -> None:
    """Serve in this process until SIGTERM/SIGINT: on ``sockets`` if any, else on
    ``--host``/``--port``."""
    from ..gateway import create_app
    from ..gateway._server import ServeOptions, serve_app

    backend: BackendFactory | None = None
    if args.backend == "ray":
        from .._runtime.ray import RayCluster  # Ray is imported only when it is used

        backend = RayCluster(args.address)
    elif args.workers > 1:
        backend = _worker_backend
    runtime = Runtime(
        workflows,
        store=args.database_url,
        backend=backend,
        lease_seconds=args.lease_seconds,
        sweep_seconds=args.sweep_seconds,
        model_batches=model_batches_from(args),
    )
    if args.backend != "ray":  # on Ray the cluster's hosts call the models
        # Before listening rather than at the first run: importing the Anthropic SDK holds the
        # event loop (seconds on a loaded machine), heartbeats included, and a worker silent
        # for the lease has its runs taken over by another.
        report_models_ready(runtime.prepare_models(), sys.stderr)
    app = create_app(runtime, max_body_bytes=args.max_body_bytes)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        keep_alive=args.keep_alive_seconds,
        read_timeout=args.read_timeout,
        limit_connections=args.limit_connections,
        graceful_seconds=args.graceful_seconds,
    )
    serve_app(app, runtime, options, on_started=on_started, sockets=sockets or None)


def _settle_process() -> None:
    """What ``serve`` and ``batch`` set when the process is the command (``main()`` without
    ``argv``), never when a test calls ``main([...])`` in its own process: the collector's
    settings for a long-lived process (see ``_runtime.heap``), and the Anthropic SDK's aiohttp
    transport, about a third less CPU per model call than its default (which in-process tests
    keep: the kit's ``anthropic_api`` intercepts that one)."""
    settle_heap()
    os.environ.setdefault(TRANSPORT_VARIABLE, "aiohttp")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.database_url = resolve_database_url(args.database_url)
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "run" and args.server is not None:
            return asyncio.run(
                run_remote(
                    args.name.removeprefix("workflow:"),
                    _parse_input(args.input),
                    server=args.server,
                    headers=request_headers(args.header),
                    out=out,
                    err=err,
                )
            )
        if args.command == "run" and args.header:
            err.write("error: --header needs --server\n")
            return EXIT_USAGE
        if args.command == "run":
            directory = Path(args.workflows)
            if not directory.is_dir():
                err.write(
                    f"error: workflow folder {directory} does not exist (use --workflows DIR)\n"
                )
                return EXIT_FAILED
            return asyncio.run(_run(args, WorkflowRegistry.discover(directory), out, err))
        if args.command == "batch":
            directory = Path(args.workflows)
            if not directory.is_dir():
                err.write(
                    f"error: workflow folder {directory} does not exist (use --workflows DIR)\n"
                )
                return EXIT_FAILED
            try:
                args.model_batches = model_batches_from(args)
            except ValueError as error:
                err.write(f"error: {error}\n")
                return EXIT_USAGE
            registry = WorkflowRegistry.discover(directory)
            if argv is None:
                _settle_process()
            return asyncio.run(run_batch_command(args, registry, out, err))
        if args.command == "serve":
            return _serve(args, err, long_lived=argv is None)
        if args.command == "hosts":
            return run_hosts(args, out, err)
        if args.verb == "recover":
            return asyncio.run(_recover(args, _resumable(args), out, err))
        return asyncio.run(_runs(args, out, err))
    except FlueError as error:
        _report(error, err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_SIGNAL[signal.SIGINT]
    except BrokenPipeError:
        # `flue-actors runs events RUN | head`: what was wanted was read. Nothing to report,
        # and nothing more to write (the interpreter's own flush at exit would fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (OSError, ValueError) as error:
        _report(error, err)
        return EXIT_FAILED
