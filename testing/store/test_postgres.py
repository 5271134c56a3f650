"""PostgreSQL-only behaviour: URLs and redaction, the schema version, live tails across processes,
the projection rebuilt after tampering, and surviving a server restart while runs are written."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from cluster.postgres import PostgresUnavailableError, ThrowawayPostgres
from e2e.support import free_port

from flue_actors.errors import StoreSchemaVersionError, StreamConflictError
from flue_actors.store import (
    EventStore,
    PostgresEventStore,
    format_offset,
    open_store,
    redact_url,
    run_stream,
)
from flue_actors.store._postgres import SCHEMA_VERSION, StoreConnectionError
from flue_actors.store._postgres.urls import redact_text, split_schema

from .conftest import (
    POSTGRES_URL,
    admission,
    drop_scratch_schemas,
    log_event,
    make_run_id,
    read_all,
    run_end,
    run_start,
    scratch_schema,
)

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def scratch_store(tmp_path: Path, **options: int) -> AsyncIterator[PostgresEventStore]:
    store = PostgresEventStore(POSTGRES_URL, schema=scratch_schema(tmp_path), **options)
    try:
        yield store
    finally:
        await store.close()
        await drop_scratch_schemas()


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:a@b@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?user=u&password=s3cret&x=1",
            "postgresql://h/db?user=u&password=***&x=1",
        ),
        ("postgresql://:s3cret@h/db", "postgresql://:***@h/db"),
        ("postgresql://h", "postgresql://h"),
    ],
)
def test_redact_url_masks_every_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    assert "s3cret" not in redact_url(url)


def test_redact_text_masks_the_url_and_its_password_anywhere() -> None:
    url = "postgresql://u:p%40ss@h/db"
    text = f"failed: {url} (password p@ss, raw p%40ss)"
    assert redact_text(text, url) == "failed: postgresql://u:***@h/db (password ***, raw ***)"


def test_split_schema_takes_only_flues_parameter() -> None:
    assert split_schema("postgresql://h/db?schema=s1&sslmode=disable") == (
        "postgresql://h/db?sslmode=disable",
        "s1",
    )
    assert split_schema("postgresql://h/db?sslmode=disable") == (
        "postgresql://h/db?sslmode=disable",
        None,
    )


async def test_open_store_selects_postgres_for_its_url_schemes() -> None:
    for url in (POSTGRES_URL, POSTGRES_URL.replace("postgresql://", "postgres://", 1)):
        store = open_store(url)
        assert isinstance(store, PostgresEventStore)
        assert store.schema == "flue"
        await store.close()  # never opened: nothing to do
    named = open_store(POSTGRES_URL + "?schema=flue_named")
    assert isinstance(named, PostgresEventStore)
    assert named.schema == "flue_named"
    with pytest.raises(ValueError, match="Unsupported FLUE_DATABASE_URL scheme 'mysql'") as caught:
        open_store("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("schema", ["", "1abc", "a-b", 'x"; DROP', "a" * 64])
def test_invalid_schema_name_is_refused(schema: str) -> None:
    with pytest.raises(ValueError, match="Invalid PostgreSQL schema name"):
        PostgresEventStore(POSTGRES_URL, schema=schema)


async def test_unreachable_server_error_never_shows_the_password() -> None:
    store = PostgresEventStore("postgresql://flue:s3cret-pw@127.0.0.1:9/test", connect_timeout=2)
    with pytest.raises(StoreConnectionError) as caught:
        await store.open()
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://flue:***@127.0.0.1:9/test" in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "s3cret-pw" not in repr(store)
    await store.close()


async def test_a_store_is_bound_to_its_first_event_loop(tmp_path: Path) -> None:
    async with scratch_store(tmp_path) as store:
        await store.create_stream("agents/a")

        def on_another_loop() -> None:
            with pytest.raises(RuntimeError, match="bound to the event loop"):
                asyncio.run(store.stream_meta("agents/a"))

        await asyncio.to_thread(on_another_loop)
        assert await store.stream_meta("agents/a") is not None


# --- Schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("found", [SCHEMA_VERSION + 1, 0])
async def test_other_schema_version_is_refused_and_left_alone(tmp_path: Path, found: int) -> None:
    async with scratch_store(tmp_path) as store:
        await store.admit_run(admission(make_run_id(1)))
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(
                f'UPDATE "{store.schema}".flue_meta SET value = $1 WHERE key = $2',
                str(found),
                "schema_version",
            )
            other = PostgresEventStore(POSTGRES_URL, schema=store.schema)
            with pytest.raises(StoreSchemaVersionError) as caught:
                await other.open()
            await other.close()
            assert caught.value.meta == {"found": found, "supported": SCHEMA_VERSION}
            assert store.schema in caught.value.message
            value = await conn.fetchval(
                f"SELECT value FROM \"{store.schema}\".flue_meta WHERE key = 'schema_version'"
            )
            assert value == str(found)
        finally:
            await conn.close()


async def test_racing_openers_create_the_schema_once(tmp_path: Path) -> None:
    schema = scratch_schema(tmp_path)
    stores = [PostgresEventStore(POSTGRES_URL, schema=schema) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].create_stream("agents/a")
        assert await stores[3].stream_meta("agents/a") is not None
    finally:
        for each in stores:
            await each.close()
        await drop_scratch_schemas()


async def test_rebuild_records_replaces_tampered_records(tmp_path: Path) -> None:
    async with scratch_store(tmp_path) as store:
        ids = [make_run_id(n) for n in range(3)]
        for run_id in ids:
            await store.admit_run(admission(run_id))
            await store.append(run_stream(run_id), [run_start(run_id)])
        await store.append(
            run_stream(ids[1]), [run_end(ids[1], index=1, duration_ms=5, result=1)], close=True
        )
        before = [await store.get_run(run_id) for run_id in ids]
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            runs = f'"{store.schema}".runs'
            await conn.execute(f"UPDATE {runs} SET status = 'errored' WHERE run_id = $1", ids[0])
            await conn.execute(f"DELETE FROM {runs} WHERE run_id = $1", ids[1])
            await conn.execute(
                f"INSERT INTO {runs} (run_id, workflow_name, status, started_at) "
                "VALUES ('run_ghost', 'ghost', 'active', '2030')"
            )
        finally:
            await conn.close()
        assert await store.rebuild_records() == 3
        assert [await store.get_run(run_id) for run_id in ids] == before
        assert await store.get_run("run_ghost") is None


# --- Live tails across stores and processes -------------------------------------------------------


async def test_waiter_in_one_store_wakes_on_append_through_another(tmp_path: Path) -> None:
    async with scratch_store(tmp_path) as reader:
        writer = PostgresEventStore(POSTGRES_URL, schema=reader.schema)
        try:
            await writer.create_stream("agents/tail")
            waiter = asyncio.create_task(
                reader.wait_for_append("agents/tail", length=0, timeout=10)
            )
            await asyncio.sleep(0.1)
            assert not waiter.done()
            began = time.monotonic()
            await writer.append("agents/tail", [log_event(index=0)])
            assert await waiter is True
            assert time.monotonic() - began < 1.0
        finally:
            await writer.close()


async def test_appends_notify_only_while_their_stream_is_watched(tmp_path: Path) -> None:
    """NOTIFY serializes commits server-wide, so unwatched streams are appended without it."""
    async with scratch_store(tmp_path) as store:
        await store.create_stream("agents/quiet")
        heard: list[str] = []
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.add_listener(
                f"flue_{store.schema}", lambda *args: heard.append(str(args[3]))
            )
            await store.append("agents/quiet", [log_event(index=0)])
            await store.close_stream("agents/other-missing")
            await asyncio.sleep(0.2)
            assert heard == []
            waiter = asyncio.create_task(
                store.wait_for_append("agents/quiet", length=1, timeout=10)
            )
            await asyncio.sleep(0.2)
            await store.append("agents/quiet", [log_event(index=1)])
            assert await waiter is True
            await asyncio.sleep(0.2)
            assert heard == ["agents/quiet"]
        finally:
            await conn.close()


_APPENDER = """
import asyncio, sys, time
from flue_actors.store import PostgresEventStore

async def main() -> None:
    url, schema, path = sys.argv[1:4]
    store = PostgresEventStore(url, schema=schema)
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await store.append(path, [{"type": "log", "message": "from another process"}])
    print(f"appended {time.time()}", flush=True)
    await store.close()

asyncio.run(main())
"""


async def test_waiter_wakes_when_another_process_appends(tmp_path: Path) -> None:
    path = "agents/cross/process"
    async with scratch_store(tmp_path) as store:
        await store.create_stream(path)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _APPENDER,
            POSTGRES_URL,
            store.schema,
            path,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
            waiter = asyncio.create_task(store.wait_for_append(path, length=0, timeout=30))
            await asyncio.sleep(0.2)
            assert not waiter.done(), "nothing was appended yet"
            began = time.monotonic()
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            assert await asyncio.wait_for(waiter, 30) is True
            woke_after = time.monotonic() - began
            line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode()
            assert line.startswith("appended ")
            assert time.time() - float(line.split()[1]) < 5
            # Well before the 30 s timeout: the notification woke it, no poll interval did.
            assert woke_after < 2.0
            page = await store.read(path)
            assert [e.data for e in page.events] == [
                {"type": "log", "message": "from another process"}
            ]
            assert await asyncio.wait_for(child.wait(), 30) == 0
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()


# --- A server restart while runs are written ------------------------------------------------------


@contextlib.contextmanager
def _own_server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL server of the test's own on 127.0.0.1, to restart without touching the
    machine's (which the rest of the suite, and anything else on the machine, is using)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a throwaway PostgreSQL server as the postgres user")
    server = ThrowawayPostgres(
        address="127.0.0.1", clients=ipaddress.IPv4Network("127.0.0.1/32"), port=free_port()
    )
    try:
        server.start()
    except PostgresUnavailableError as error:
        pytest.skip(str(error))
    try:
        yield server
    finally:
        server.stop()


async def _writer(
    store: EventStore,
    path: str,
    stop: asyncio.Event,
    acked: list[list[str]],
    failures: list[str],
) -> None:
    """Appends batches with expected_seq until ``stop``; on a dropped connection it retries the
    same batch until it is acknowledged or found already written (never written twice)."""
    seq = 0
    for b in range(5000):
        if stop.is_set():
            return
        batch = [log_event(index=seq + i, message=f"{path}:{b}:{i}") for i in range(3)]
        for _ in range(1200):
            try:
                await store.append(path, batch, expected_seq=seq)
                break
            except StoreConnectionError as error:
                failures.append(str(error))
                await asyncio.sleep(0.05)
            except StreamConflictError:
                # The failed attempt had committed before the connection dropped: it is there.
                stored = await read_all(store, path, offset=format_offset(seq - 1))
                assert [e.data for e in stored] == batch
                break
        else:
            raise AssertionError(f"{path}: batch {b} never went through")
        acked.append([e["message"] for e in batch])
        seq += len(batch)
        await asyncio.sleep(0.005)


@pytest.mark.pg_restart
@pytest.mark.timeout(480)  # past its own bounds: a restart (120 s), the writers (120 s), ...
async def test_server_restart_loses_no_acknowledged_event_and_duplicates_none() -> None:
    with _own_server() as server:
        await _write_through_a_restart(server)


async def _write_through_a_restart(server: ThrowawayPostgres) -> None:
    tail: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    store = PostgresEventStore(server.url, schema="flue_restart", max_size=4)
    try:
        paths = [f"agents/restart/{i}" for i in range(6)]
        for path in paths:
            await store.create_stream(path)
        await store.create_stream("agents/restart/tail")
        tail = asyncio.create_task(
            store.wait_for_append("agents/restart/tail", length=0, timeout=90)
        )
        acked: dict[str, list[list[str]]] = {path: [] for path in paths}
        failures: list[str] = []
        stop = asyncio.Event()
        writers = [
            asyncio.create_task(_writer(store, path, stop, acked[path], failures)) for path in paths
        ]
        try:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.restart, timeout=120)
            restarted = {path: len(acked[path]) for path in paths}
            # Every writer reconnects and carries on.
            for _ in range(600):
                if all(len(acked[p]) >= restarted[p] + 5 for p in paths):
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), 120)
        assert all(len(acked[p]) >= restarted[p] + 5 for p in paths), (restarted, acked)
        assert failures, "the restart was expected to fail some appends"
        for path in paths:
            stored = await read_all(store, path, limit=1000)
            messages = [e.data["message"] for e in stored]
            assert messages == [m for batch in acked[path] for m in batch]
            assert len(set(messages)) == len(messages)
            assert [e.seq for e in stored] == list(range(len(stored)))
        # A waiter that started before the restart is still woken after it.
        assert not tail.done()
        await store.append("agents/restart/tail", [log_event(index=0)])
        assert await asyncio.wait_for(tail, 30) is True
    finally:
        if not tail.done():
            tail.cancel()
        await store.close()
