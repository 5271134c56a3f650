"""Worker processes of a command (``serve --workers``, ``batch --workers``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Final

__all__ = ["die_with_parent"]

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
