"""Noticing commits that other processes make to a SQLite database, without polling.

SQLite's own hooks only see this process's connections. In WAL mode every commit writes to the
``-wal`` file beside the database, so on Linux an inotify watch on the database's folder hears
each commit of every process (Ray hosts writing runs that a gateway is tailing). Elsewhere
there is no watcher and live readers see other processes' events when their wait times out.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["ForeignCommitWatcher"]

logger = logging.getLogger("flue_actors.store")

_IN_MODIFY: Final = 0x00000002
_IN_CREATE: Final = 0x00000100
_IN_MOVED_TO: Final = 0x00000080
_IN_CLOEXEC: Final = 0o2000000
_EVENT_HEADER: Final = struct.Struct("iIII")


class ForeignCommitWatcher:
    """Calls ``on_commit`` (from its own thread) whenever the database or its WAL changes."""

    def __init__(self, database: Path, on_commit: Callable[[], None]) -> None:
        self._names = {database.name.encode(), f"{database.name}-wal".encode()}
        self._on_commit = on_commit
        self._fd = -1
        self._stop_read, self._stop_write = -1, -1
        self._thread: threading.Thread | None = None
        if not sys.platform.startswith("linux"):
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(_IN_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1 failed")
            mask = _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO
            if libc.inotify_add_watch(fd, os.fsencode(database.parent), mask) < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), "inotify_add_watch failed")
        except (OSError, AttributeError) as error:
            logger.info("no cross-process wake-ups for %s: %s", database, error)
            return
        self._fd = fd
        self._stop_read, self._stop_write = os.pipe()
        self._thread = threading.Thread(target=self._watch, name="flue-sqlite-watch", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self._thread is not None

    def _watch(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_read], [], [])
            if self._stop_read in ready:
                return
            data = os.read(self._fd, 64 * 1024)
            if self._mentions_database(data):
                try:
                    self._on_commit()
                except Exception:  # never let a wake-up failure end the watch
                    logger.exception("waking readers after a foreign commit failed")

    def _mentions_database(self, data: bytes) -> bool:
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            _, _, _, length = _EVENT_HEADER.unpack_from(data, offset)
            start = offset + _EVENT_HEADER.size
            name = data[start : start + length].rstrip(b"\0")
            if name in self._names:
                return True
            offset = start + length
        return False

    def close(self) -> None:
        if self._thread is None:
            return
        os.write(self._stop_write, b"x")
        self._thread.join()
        for fd in (self._fd, self._stop_read, self._stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._thread = None
