"""Listing runs: the one query every SQL store runs for ``list_runs``, and the page it makes.

SQLite and PostgreSQL share the ``runs`` table's shape (the columns of :data:`RUN_COLUMNS`, in
that order, ordered by code point) and both accept numbered parameters (``?1`` and ``$1``), so the
filters, the keyset cursor and the ordering are written once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .._records import RunPage, RunRecord, RunStatus, decode_cursor, encode_cursor, normalize_limit

__all__ = ["RUN_COLUMNS", "RunListing", "run_listing"]

RUN_COLUMNS: Final = (
    "run_id",
    "workflow_name",
    "status",
    "started_at",
    "input",
    "trace_carrier",
    "ended_at",
    "is_error",
    "duration_ms",
    "result",
    "error",
)


def _same(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class RunListing:
    """A page's query: run ``sql`` with ``params``, then turn its rows into a page."""

    sql: str
    params: tuple[str | int, ...]
    count: int

    def page(self, records: Sequence[RunRecord]) -> RunPage:
        """The page of the query's records. One row past ``count`` says there is a next page."""
        pointers = [record.pointer() for record in records[: self.count]]
        more = len(records) > self.count
        return RunPage(pointers, encode_cursor(pointers[-1]) if more and pointers else None)


def run_listing(
    table: str,
    *,
    marker: Literal["?", "$"],
    status: RunStatus | None = None,
    workflow_name: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    encode: Callable[[str], str] = _same,
) -> RunListing:
    """Newest first (``startedAt`` then ``runId``, descending), filters AND-combined, at most
    ``limit`` (Flue's rule) after the cursor's position. ``marker`` is the store's parameter
    prefix; ``encode`` turns a name into what the store keeps (PostgreSQL escapes NUL)."""
    count = normalize_limit(limit)
    clauses: list[str] = []
    params: list[str | int] = []

    def param(value: str | int) -> str:
        params.append(value)
        return f"{marker}{len(params)}"

    if status is not None:
        clauses.append(f"status = {param(status)}")
    if workflow_name is not None:
        clauses.append(f"workflow_name = {param(encode(workflow_name))}")
    position = decode_cursor(cursor)
    if position is not None:
        started_at, run_id = (param(encode(value)) for value in position)
        clauses.append(f"(started_at, run_id) < ({started_at}, {run_id})")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    # One row more than the page holds: its presence is what says a next page exists.
    sql = (
        f"SELECT {', '.join(RUN_COLUMNS)} FROM {table}{where} "
        f"ORDER BY started_at DESC, run_id DESC LIMIT {param(count + 1)}"
    )
    return RunListing(sql, tuple(params), count)
