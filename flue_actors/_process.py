"""Worker processes of a command (``serve --workers``, ``batch --workers``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.context import ForkContext, SpawnContext
from typing import Final

__all__ = ["die_with_parent", "forget_parent_signals", "worker_context"]

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (elsewhere: nothing), so a
    ``kill -9`` of a command does not leave its workers running."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def worker_context() -> ForkContext | SpawnContext:
    """How a command starts its workers: forked on Linux while the command has no thread but
    its main one (a copy of what it has imported, ready in milliseconds rather than the second
    a fresh interpreter takes to import it all again), spawned otherwise (a fork of a process
    with other threads may copy a lock one of them held, and never see it released)."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def forget_parent_signals() -> None:
    """In a forked worker: the signal handling its parent's event loop set up is not its own
    (a signal would wake the parent's loop through the inherited wake-up descriptor)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
