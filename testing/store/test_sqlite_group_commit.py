"""The SQLite writer's group commit: requests drained together share one transaction, and one
that is refused partway through its writes takes nothing of the others' with it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from flue_actors.store._sqlite.schema import connect
from flue_actors.store._sqlite.worker import Changes, DatabaseThread, Work


def _writer(path: Path) -> tuple[DatabaseThread, list[int]]:
    conn = connect(str(path), "FULL")
    conn.execute("CREATE TABLE items (name TEXT PRIMARY KEY)")
    commits: list[int] = []
    thread = DatabaseThread(
        conn,
        transactional=True,
        on_commit=lambda changes: commits.append(len(changes)),
        name="test-writer",
    )
    thread.start()
    return thread, commits


def _insert(*names: str, fail_after: int | None = None) -> Work[list[str]]:
    def work(conn: sqlite3.Connection, changed: Changes) -> list[str]:
        for i, name in enumerate(names):
            if i == fail_after:
                raise ValueError(f"refused after {i} writes")
            conn.execute("INSERT INTO items VALUES (?)", (name,))
            changed[name] = (i + 1, False)
        return list(names)

    return work


async def _held_batch(thread: DatabaseThread, *works: Work[list[str]]) -> list[object]:
    """Submit ``works`` while the writer is held, so it drains them as one batch."""
    release = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        release.wait(10)

    thread.post(hold)
    futures = [thread.submit(work) for work in works]
    release.set()
    return await asyncio.gather(*futures, return_exceptions=True)


def _names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM items")}


async def test_a_request_refused_midway_leaves_the_batch_whole(tmp_path: Path) -> None:
    thread, commits = _writer(tmp_path / "log.db")
    try:
        results = await _held_batch(
            thread,
            _insert("a1", "a2"),
            _insert("b1", "b2", "b3", fail_after=2),  # wrote b1 and b2, then refused
            _insert("c1"),
            _insert("a1"),  # a constraint error from SQLite itself, after a1 was written
            _insert("d1"),
        )
    finally:
        thread.stop()
    assert results[0] == ["a1", "a2"]
    assert isinstance(results[1], ValueError)
    assert results[2] == ["c1"]
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert results[4] == ["d1"]
    assert _names(tmp_path / "log.db") == {"a1", "a2", "c1", "d1"}
    # One commit for the whole batch, reporting only the accepted requests' changes.
    assert commits == [4]


async def test_a_batch_without_refusals_is_one_commit(tmp_path: Path) -> None:
    thread, commits = _writer(tmp_path / "log.db")
    try:
        results = await _held_batch(thread, *(_insert(f"n{i}") for i in range(20)))
    finally:
        thread.stop()
    assert results == [[f"n{i}"] for i in range(20)]
    assert _names(tmp_path / "log.db") == {f"n{i}" for i in range(20)}
    assert commits == [20]
