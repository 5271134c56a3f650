"""The event store's raw speed: SQLite (file, ``synchronous=FULL``) and PostgreSQL side by side.

Per backend, on an empty store:

- ``single``: single-event appends, ``--writers`` streams written concurrently, each append fenced
  with ``expected_seq`` as a RunActor does (events/s).
- ``batched``: ``--events`` events written as runs of ``--per-run`` events, in appends of
  ``--batch`` events: admission, ``run_start`` in the first batch, ``run_end`` with the close in
  the last, ``--writers`` runs at a time (events/s).
- ``read``: every run's stream paged through at the largest page size (events/s).
- ``rebuild``: every run record dropped and refolded from those events (seconds).

Prints one JSON object, with PostgreSQL/SQLite ratios and the targets checked.

    python benchmarks/bench_store.py [--events 1000000] [--quick] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from _load import concurrently

from flue_actors._events import RunAdmittedEvent
from flue_actors.store import EventStore, PostgresEventStore, SqliteEventStore, run_stream

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGETS = {
    "sqlite_batched_events_per_s": 100_000,
    "postgres_batched_events_per_s": 20_000,
    "rebuild_1m_events_s": 20.0,
}


_ENVELOPE = {"v": 3, "eventIndex": 0, "timestamp": "2025-01-01T00:00:00.000Z", "runId": ""}
_PAYLOADS: dict[str, dict[str, Any]] = {
    "log": {"type": "log", "level": "info", "message": "a step of the run, logged"},
    "run_start": {
        "type": "run_start",
        "workflowName": "bench",
        "startedAt": "2025-01-01T00:00:00.000Z",
        "input": {},
    },
    "run_end": {"type": "run_end", "isError": False, "result": {"ok": True}, "durationMs": 1},
}


def _event(run_id: str, index: int, kind: str = "log") -> dict[str, Any]:
    """A v3 event of about 200 bytes of JSON, as a run's stream carries."""
    event = {**_ENVELOPE, **_PAYLOADS[kind]}
    event["eventIndex"] = index
    event["runId"] = run_id
    if kind == "log":
        event["attributes"] = {"step": index}
    return event


async def _single(store: EventStore, events: int, writers: int) -> float:
    paths = [f"agents/bench/{w}" for w in range(writers)]
    for path in paths:
        await store.create_stream(path)
    per_stream = events // writers

    async def write(w: int) -> None:
        for seq in range(per_stream):
            await store.append(paths[w], [_event("single", seq)], expected_seq=seq)

    began = time.perf_counter()
    await asyncio.gather(*(write(w) for w in range(writers)))
    return per_stream * writers / (time.perf_counter() - began)


async def _batched(store: EventStore, runs: int, per_run: int, batch: int, writers: int) -> float:
    async def run(n: int) -> None:
        run_id = f"run_{n:026d}"
        header: RunAdmittedEvent = {
            "type": "run_admitted",
            "runId": run_id,
            "workflowName": "bench",
            "startedAt": f"2025-01-01T00:00:{n % 60:02d}.000Z",
            "input": {},
        }
        await store.admit_run(header)
        kinds = ["log"] * per_run
        kinds[0], kinds[-1] = "run_start", "run_end"
        for start in range(0, per_run, batch):
            end = min(start + batch, per_run)
            events = [_event(run_id, i, kinds[i]) for i in range(start, end)]
            await store.append(run_stream(run_id), events, expected_seq=start, close=end == per_run)

    began = time.perf_counter()
    await concurrently(runs, writers, run)
    return runs * per_run / (time.perf_counter() - began)


async def _read(store: EventStore, runs: int, writers: int) -> float:
    total = 0

    async def page_through(n: int) -> None:
        nonlocal total
        offset = "-1"
        while True:
            page = await store.read(run_stream(f"run_{n:026d}"), offset=offset, limit=1000)
            total += len(page.events)
            if page.up_to_date:
                return
            offset = page.next_offset

    began = time.perf_counter()
    await concurrently(runs, writers, page_through)
    return total / (time.perf_counter() - began)


async def _measure(store: EventStore, args: argparse.Namespace) -> dict[str, Any]:
    runs = args.events // args.per_run
    result: dict[str, Any] = {
        "single_events_per_s": round(await _single(store, args.single, args.writers)),
        "batched_events_per_s": round(
            await _batched(store, runs, args.per_run, args.batch, args.writers)
        ),
        "read_events_per_s": round(await _read(store, runs, args.writers)),
    }
    began = time.perf_counter()
    rebuilt = await store.rebuild_records()
    result["rebuild_s"] = round(time.perf_counter() - began, 3)
    result["rebuild_events"] = runs * args.per_run
    result["rebuild_runs"] = rebuilt
    assert rebuilt == runs, (rebuilt, runs)
    return result


async def _sqlite(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flue-bench-") as folder:
        store = SqliteEventStore(Path(folder) / "bench.db", synchronous="FULL")
        try:
            return await _measure(store, args)
        finally:
            await store.close()


async def _postgres(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"flue_bench_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(args.postgres_url, schema=schema, max_size=args.pool)
    try:
        return await _measure(store, args)
    finally:
        await store.close()
        conn = await asyncpg.connect(args.postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


def _ratios(sqlite: dict[str, Any], postgres: dict[str, Any]) -> dict[str, float]:
    keys = ["single_events_per_s", "batched_events_per_s", "read_events_per_s", "rebuild_s"]
    return {key: round(postgres[key] / sqlite[key], 3) for key in keys if sqlite.get(key)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the runs")
    parser.add_argument("--single", type=int, default=20_000, help="single-event appends")
    parser.add_argument("--per-run", type=int, default=1000, help="events per run")
    parser.add_argument("--batch", type=int, default=100, help="events per batched append")
    parser.add_argument("--writers", type=int, default=32, help="concurrent writers")
    parser.add_argument("--pool", type=int, default=16, help="PostgreSQL pool size")
    parser.add_argument("--quick", action="store_true", help="100,000 events, 5,000 single")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FLUE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="the PostgreSQL database (a scratch schema is created and dropped)",
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.single = 100_000, 5_000
    backends = args.backends.split(",")
    report: dict[str, Any] = {
        "params": {
            "events": args.events,
            "single": args.single,
            "per_run": args.per_run,
            "batch": args.batch,
            "writers": args.writers,
            "pool": args.pool,
            "cpus": os.cpu_count(),
            "sqlite": "file, WAL, synchronous=FULL",
            "python": sys.version.split()[0],
        }
    }
    if "sqlite" in backends:
        report["sqlite"] = asyncio.run(_sqlite(args))
    if "postgres" in backends:
        report["postgres"] = asyncio.run(_postgres(args))
    if "sqlite" in report and "postgres" in report:
        report["postgres_over_sqlite"] = _ratios(report["sqlite"], report["postgres"])
    checks: dict[str, bool] = {}
    if "sqlite" in report:
        checks["sqlite_batched"] = (
            report["sqlite"]["batched_events_per_s"] >= TARGETS["sqlite_batched_events_per_s"]
        )
    if "postgres" in report:
        checks["postgres_batched"] = (
            report["postgres"]["batched_events_per_s"] >= TARGETS["postgres_batched_events_per_s"]
        )
    if args.events >= 1_000_000:
        for name in ("sqlite", "postgres"):
            if name in report:
                checks[f"{name}_rebuild_1m"] = (
                    report[name]["rebuild_s"] < TARGETS["rebuild_1m_events_s"]
                )
    report["targets"] = TARGETS
    report["targets_met"] = checks
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
