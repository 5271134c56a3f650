"""Noticing commits that other processes make to a SQLite database, without polling.

SQLite's own hooks only see this process's connections. In WAL mode every commit writes to the
``-wal`` file beside the database, so on Linux an inotify watch on the database's folder hears
each commit of every process (Ray hosts writing runs that a gateway is tailing). One inotify
instance and one thread serve every store of the process (the kernel allows each user only a
few instances); a folder is watched only while some store has live readers waiting, since the
watch also hears this process's own commits, and waking on each of them cost about 7% of a
busy server's CPU when nobody was waiting. The same thread runs the short delayed re-checks
``live.py`` schedules (one thread, not a timer thread per re-check). Elsewhere there is no
watcher, and live readers see other processes' events when their wait times out.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import logging
import os
import select
import struct
import sys
import threading
import time
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
_Listener = tuple[frozenset[bytes], Callable[[], None]]


class _Inotify:
    """The process's one inotify instance: folder watches shared by every listener."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = self._libc.inotify_init1(_IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._lock = threading.Lock()
        self._watches: dict[bytes, int] = {}
        self._listeners: dict[int, dict[int, _Listener]] = {}
        self._next_token = 0
        # Delayed calls: (due, order, function); the pipe wakes the thread when one is added.
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        threading.Thread(target=self._run, name="flue-sqlite-watch", daemon=True).start()

    def call_later(self, delay: float, function: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._order), function))
        # A full pipe holds wake-ups already: the thread will look.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def add(self, folder: Path, names: frozenset[bytes], callback: Callable[[], None]) -> int:
        key = os.fsencode(folder)
        with self._lock:
            wd = self._watches.get(key)
            if wd is None:
                mask = _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO
                wd = self._libc.inotify_add_watch(self._fd, key, mask)
                if wd < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch({folder}) failed")
                self._watches[key] = wd
            self._next_token += 1
            self._listeners.setdefault(wd, {})[self._next_token] = (names, callback)
            return self._next_token

    def remove(self, token: int) -> None:
        with self._lock:
            for key, wd in list(self._watches.items()):
                listeners = self._listeners.get(wd, {})
                if listeners.pop(token, None) is not None and not listeners:
                    del self._watches[key]
                    del self._listeners[wd]
                    self._libc.inotify_rm_watch(self._fd, wd)
                    return

    def _run(self) -> None:
        while True:
            with self._lock:
                timeout = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None
            ready, _, _ = select.select([self._fd, self._wake_read], [], [], timeout)
            if self._wake_read in ready:
                os.read(self._wake_read, 4096)
            due: dict[int, Callable[[], None]] = {}
            if self._fd in ready:
                data = os.read(self._fd, 64 * 1024)
                offset = 0
                with self._lock:
                    while offset + _EVENT_HEADER.size <= len(data):
                        wd, _, _, length = _EVENT_HEADER.unpack_from(data, offset)
                        start = offset + _EVENT_HEADER.size
                        name = data[start : start + length].rstrip(b"\0")
                        offset = start + length
                        for token, (names, callback) in self._listeners.get(wd, {}).items():
                            if name in names:
                                due[token] = callback  # once per batch, however many events
            timers: list[Callable[[], None]] = []
            with self._lock:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    timers.append(heapq.heappop(self._timers)[2])
            for callback in [*due.values(), *timers]:
                try:
                    callback()
                except Exception:  # never let one store's failure end the others' watch
                    logger.exception("waking readers after a foreign commit failed")


_instance: _Inotify | None = None
_instance_lock = threading.Lock()


def _inotify() -> _Inotify | None:
    global _instance
    if not sys.platform.startswith("linux"):
        return None
    with _instance_lock:
        if _instance is None:
            try:
                _instance = _Inotify()
            except (OSError, AttributeError) as error:
                logger.info("no cross-process wake-ups: %s", error)
                return None
        return _instance


class ForeignCommitWatcher:
    """Calls ``on_commit`` (from the watch thread) whenever the database or its WAL changes,
    while armed: ``arm()`` when live readers start waiting, ``disarm()`` when none are left."""

    def __init__(self, database: Path, on_commit: Callable[[], None]) -> None:
        self._inotify = _inotify()
        self._database = database
        self._names = frozenset({database.name.encode(), f"{database.name}-wal".encode()})
        self._on_commit = on_commit
        self._token: int | None = None
        self._closed = False

    @property
    def available(self) -> bool:
        return self._inotify is not None

    @property
    def active(self) -> bool:
        return self._token is not None

    def arm(self) -> None:
        if self._inotify is None or self._token is not None or self._closed:
            return
        try:
            self._token = self._inotify.add(self._database.parent, self._names, self._on_commit)
        except OSError as error:
            logger.info("no cross-process wake-ups for %s: %s", self._database, error)

    def disarm(self) -> None:
        if self._inotify is not None and self._token is not None:
            self._inotify.remove(self._token)
            self._token = None

    def call_later(self, delay: float, function: Callable[[], None]) -> None:
        """Run ``function`` in the watch thread after ``delay`` seconds."""
        if self._inotify is not None:
            self._inotify.call_later(delay, function)

    def close(self) -> None:
        self._closed = True
        self.disarm()
