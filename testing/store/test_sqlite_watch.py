"""SQLite file stores hear other processes' commits (inotify on Linux), without polling."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from flue_actors.store import SqliteEventStore
from flue_actors.store._sqlite.inotify import ForeignCommitWatcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")

_APPENDER = """
import asyncio, sys
from flue_actors.store import SqliteEventStore

async def main(location, path):
    store = SqliteEventStore(location)
    print("ready", flush=True)
    sys.stdin.readline()
    await store.append(path, [{"type": "log", "message": "from another process"}])
    await store.close()
    print("appended", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_waiter_wakes_when_another_process_appends(tmp_path: Path) -> None:
    location = tmp_path / "flue.db"
    path = "agents/cross/process"
    store = SqliteEventStore(location)
    await store.create_stream(path)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _APPENDER,
        str(location),
        path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
        waiter = asyncio.create_task(store.wait_for_append(path, length=0, timeout=30))
        await asyncio.sleep(0.3)
        assert not waiter.done(), "nothing was appended yet"
        began = time.monotonic()
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        assert await asyncio.wait_for(waiter, 30) is True
        # Well before the 30 s timeout: the other process's commit woke it.
        assert time.monotonic() - began < 2.0
        page = await store.read(path)
        assert [event.data for event in page.events] == [
            {"type": "log", "message": "from another process"}
        ]
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"appended"
        assert await asyncio.wait_for(child.wait(), 30) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await store.close()


async def test_commits_to_other_streams_wake_nobody(tmp_path: Path) -> None:
    location = tmp_path / "flue.db"
    watched, other = "agents/watched", "agents/other"
    store = SqliteEventStore(location)
    writer = SqliteEventStore(location)  # a second connection stands in for another process
    await store.create_stream(watched)
    await writer.create_stream(other)
    try:
        waiter = asyncio.create_task(store.wait_for_append(watched, length=0, timeout=1.0))
        await asyncio.sleep(0.2)
        await writer.append(other, [{"type": "log"}])
        assert await waiter is False  # timed out: the other stream's commit did not wake it
    finally:
        await writer.close()
        await store.close()


async def _until(condition: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        await asyncio.sleep(0.01)


async def test_the_watch_is_armed_only_while_someone_waits(tmp_path: Path) -> None:
    """Inotify also hears this process's own commits: nobody waiting, nobody listens."""
    path = "agents/armed"
    store = SqliteEventStore(tmp_path / "flue.db")
    watcher = store._live._watcher
    assert isinstance(watcher, ForeignCommitWatcher)
    try:
        await store.create_stream(path)
        await store.append(path, [{"type": "log"}])
        assert not watcher.active
        waiter = asyncio.create_task(store.wait_for_append(path, length=1, timeout=30))
        await _until(lambda: watcher.active, "arming the watch for a waiter")
        await store.append(path, [{"type": "log"}])
        assert await asyncio.wait_for(waiter, 30) is True
        # The next commit heard with nobody waiting disarms it.
        await store.append(path, [{"type": "log"}])
        await _until(lambda: not watcher.active, "disarming the watch")
    finally:
        await store.close()


async def test_own_commits_cost_no_re_read_and_others_do(tmp_path: Path) -> None:
    """A re-check asks the writer's connection whether anyone else committed (data_version
    ignores its own commits) and re-reads the watched tails only then."""
    location = tmp_path / "flue.db"
    path = "agents/rechecked"
    store = SqliteEventStore(location)
    other = SqliteEventStore(location)  # another connection, as another process would be
    live = store._live
    re_reads: list[int] = []
    real = live._wake_moved

    def counting(conn: sqlite3.Connection) -> None:
        re_reads.append(1)
        real(conn)

    live._wake_moved = counting  # type: ignore[method-assign]

    async def recheck() -> None:
        await store._writer.submit(lambda conn, _changed: live._recheck(conn))

    try:
        await store.create_stream(path)
        await recheck()
        assert len(re_reads) == 1  # the first look has nothing to compare with
        for _ in range(3):
            await store.append(path, [{"type": "log"}])
            await recheck()
        assert len(re_reads) == 1
        await other.append(path, [{"type": "log", "from": "elsewhere"}])
        await recheck()
        assert len(re_reads) == 2
    finally:
        await other.close()
        await store.close()
