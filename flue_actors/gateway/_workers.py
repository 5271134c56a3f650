"""Serving from several worker processes on one listening socket (``serve --workers N``).

The way uvicorn's own ``--workers`` does it: the parent binds and listens once, then starts each
worker with ``multiprocessing``'s spawn and hands it the socket; every worker accepts from the
same queue. uvicorn's supervisor is not used as such because its workers run a bare
``uvicorn.Server``, without the gateway's draining, read timeout and runtime (``_server.py``);
here each worker runs ``target``, which serves all of that on the socket.

The parent serves nothing and opens no store. It forwards SIGTERM/SIGINT to the workers (each
then stops as ``_server.py`` describes) and waits for them; a second signal is forwarded as
SIGINT, which makes each worker exit at once. A worker that exits while the others serve
(crashed, or killed) stops them all, and the command fails: its runs are then left to the
lease sweep of whichever process serves the store next, as after a crash of a single process.
Workers die with the parent (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the parent alone does
not leave them serving.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import TextIO

from .._process import die_with_parent

__all__ = ["WorkerReport", "serve_workers"]

# A worker's target: ``target(sockets, report)``; ``report(ended_run_ids)`` once it listens.
WorkerReport = Callable[[list[str]], None]
# Exit statuses of a worker that stopped because it was asked to.
_ASKED = {0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT}


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening from now on: connections queue while the workers start.
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _worker_main(
    target: Callable[[list[socket.socket], WorkerReport], None],
    sock: socket.socket,
    channel: Connection,
    parent: int,
) -> None:
    die_with_parent(parent)

    def report(ended: list[str]) -> None:
        with contextlib.suppress(OSError):
            channel.send(ended)

    try:
        target([sock], report)
    finally:
        channel.close()


def serve_workers(
    target: Callable[[list[socket.socket], WorkerReport], None],
    *,
    workers: int,
    host: str,
    port: int,
    backlog: int,
    on_started: Callable[[list[int], list[str]], None],
    err: TextIO,
) -> int:
    """Serve with ``workers`` processes each running ``target`` (picklable: a module-level
    function, or a ``functools.partial`` of one) until SIGTERM/SIGINT. ``on_started(pids,
    ended_run_ids)`` once every worker listens. Returns the exit code: 0 after a requested
    stop, 1 if a worker ended on its own or the socket could not be bound."""
    try:
        sock = _bind(host, port, backlog)
    except OSError as error:
        err.write(f"error: cannot listen on {host}:{port}: {error}\n")
        return 1
    spawn = multiprocessing.get_context("spawn")
    signals: list[int] = []
    processes: list[SpawnProcess] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        # The first signal asks for a graceful stop; any later one for an immediate exit.
        sent = signal.SIGTERM if len(signals) == 1 else signal.SIGINT
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sent)

    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, forward) for signum in stops}
    channels: dict[Connection, int] = {}
    try:
        for index in range(workers):
            receiver, sender = spawn.Pipe(duplex=False)
            process = spawn.Process(
                target=_worker_main,
                args=(target, sock, sender, os.getpid()),
                name=f"flue-serve-worker-{index}",
            )
            process.start()
            sender.close()
            processes.append(process)
            channels[receiver] = index
            if signals:  # asked to stop while the others started: this one too
                process.terminate()
        return _supervise(processes, channels, signals, on_started, err)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
        for process in processes:  # all have exited, unless supervising itself failed
            if process.exitcode is None:
                process.terminate()
            process.join()


def _supervise(
    processes: list[SpawnProcess],
    channels: dict[Connection, int],
    signals: list[int],
    on_started: Callable[[list[int], list[str]], None],
    err: TextIO,
) -> int:
    started: set[int] = set()
    ended: list[str] = []
    failed = False
    sentinels = {process.sentinel: index for index, process in enumerate(processes)}
    while sentinels:
        for ready in wait([*channels, *sentinels]):
            if isinstance(ready, Connection):
                index = channels[ready]
                try:
                    ended.extend(ready.recv())
                except (EOFError, OSError):
                    del channels[ready]
                    ready.close()
                    continue
                started.add(index)
                if len(started) == len(processes) and not signals and not failed:
                    on_started([process.pid or 0 for process in processes], ended)
                continue
            assert isinstance(ready, int)
            index = sentinels.pop(ready)
            process = processes[index]
            process.join()
            if not signals and not failed:
                failed = True
                when = "while serving" if index in started else "before serving"
                err.write(
                    f"error: worker {process.pid} exited {when} (status {process.exitcode});"
                    " stopping the others\n"
                )
                err.flush()
                for other in processes:
                    if other.exitcode is None:
                        other.terminate()
            elif signals and process.exitcode not in _ASKED:
                failed = True
    return 1 if failed else 0
