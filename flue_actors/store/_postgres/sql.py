"""The statements of the PostgreSQL store, for one schema and one notification channel.

Each write that can be is one statement, so with the driver's prepared-statement cache it costs
one round trip: the ``UPDATE ... RETURNING`` on the stream row is the fence (it takes the row
lock, and a racing writer re-checks ``length`` against the committed row, so two appends with the
same ``expected_seq`` cannot both match) and ``pg_notify`` rides in the same transaction, so it is
delivered exactly when the events become visible.

PostgreSQL serializes the commits of every transaction that notifies (database-wide), which would
cap appends at one fsync each. So an append notifies only while its stream is *watched*: a waiter
first sets ``watched_until`` on the stream row (``watch``). That update and an append's update
take the same row lock, so either the waiter's update sees the append's new length, or the
append sees the watch and notifies. Creating a stream always notifies, for waiters on a stream
that did not exist yet.
"""

from __future__ import annotations

from typing import Final

from .codec import RUN_COLUMNS

__all__ = ["LIFECYCLE_TYPES_SQL", "Statements"]

LIFECYCLE_TYPES_SQL: Final = "('run_start', 'run_resume', 'run_end')"
_COLUMNS: Final = ", ".join(RUN_COLUMNS)
_RUN_CASTS: Final = (
    "$7::text, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, "
    "$14::boolean, $15::bigint, $16::text, $17::text"
)
_UPSERT_SET: Final = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
_RUNS_PREFIX: Final = "path >= 'runs/' AND path < 'runs0'"
_IF_WATCHED: Final = "CASE WHEN watched_until >= now() THEN pg_notify({ch}, {payload}) END"

# {s} is the quoted schema, {ch} the channel as a string literal.
_TEMPLATES: Final = {
    # $1 path, $2 data[], $3 expected_seq, $4 close, $5 types[], $6 notify payload
    "append": """
WITH s AS (
    UPDATE {s}.streams
       SET length = length + cardinality($2::text[]), closed = closed OR $4::boolean
     WHERE path = $1 AND NOT closed AND ($3::bigint IS NULL OR length = $3::bigint)
 RETURNING length - cardinality($2::text[]) AS start, {if_watched_6} AS notified
), ins AS (
    INSERT INTO {s}.events (path, seq, type, data)
    SELECT $1, s.start + e.ord - 1, e.type, e.data
      FROM s, unnest($5::text[], $2::text[]) WITH ORDINALITY AS e(type, data, ord)
)
SELECT start FROM s""",
    # In a transaction that holds the stream row (``lock``): events, length and run record.
    # In a transaction that holds the stream row (``lock``): events, length and run record.
    # $1 path, $2 start, $3 data[], $4 types[], $5 close, $6 notify payload,
    # $7-$17 the run record (RUN_COLUMNS order), $18 whether to write it
    "write_locked": f"""
WITH ins AS (
    INSERT INTO {{s}}.events (path, seq, type, data)
    SELECT $1, $2::bigint + e.ord - 1, e.type, e.data
      FROM unnest($4::text[], $3::text[]) WITH ORDINALITY AS e(type, data, ord)
), st AS (
    UPDATE {{s}}.streams
       SET length = $2::bigint + cardinality($3::text[]), closed = closed OR $5::boolean
     WHERE path = $1
 RETURNING {{if_watched_6}} AS notified
), run AS (
    INSERT INTO {{s}}.runs ({_COLUMNS}) SELECT {_RUN_CASTS} WHERE $18::boolean
    ON CONFLICT (run_id) DO UPDATE SET {_UPSERT_SET}
)
SELECT count(*) FROM st""",
    "lock": "SELECT length, closed FROM {s}.streams WHERE path = $1 FOR UPDATE",
    "meta": "SELECT length, closed FROM {s}.streams WHERE path = $1",
    "header": "SELECT header FROM {s}.streams WHERE path = $1",
    # $1-$11 the record, $12 path, $13 header, $14 notify payload, $15 owner (or null)
    "admit": f"""
WITH r AS (
    INSERT INTO {{s}}.runs ({_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (run_id) DO NOTHING RETURNING run_id
), o AS (
    INSERT INTO {{s}}.run_owners (run_id, owner) SELECT run_id, $15::text FROM r
    WHERE $15::text IS NOT NULL
), st AS (
    INSERT INTO {{s}}.streams (path, header) SELECT $12, $13 FROM r
    ON CONFLICT (path) DO UPDATE SET header = coalesce(streams.header, excluded.header)
    RETURNING pg_notify({{ch}}, $14::text) AS notified
)
SELECT count(*) FROM r""",
    # As ``admit``, claiming the idempotency key first: $16 workflow, $17 key, $18 fingerprint.
    # A key claimed by a concurrent transaction makes this one wait for its commit, then claim
    # nothing, so the run is not admitted.
    "admit_keyed": f"""
WITH k AS (
    INSERT INTO {{s}}.run_keys (workflow_name, key, run_id, fingerprint)
    VALUES ($16::text, $17::text, $1::text, $18::text)
    ON CONFLICT (workflow_name, key) DO NOTHING RETURNING run_id
), r AS (
    INSERT INTO {{s}}.runs ({_COLUMNS})
    SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
           $8::boolean, $9::bigint, $10::text, $11::text FROM k
    ON CONFLICT (run_id) DO NOTHING RETURNING run_id
), o AS (
    INSERT INTO {{s}}.run_owners (run_id, owner) SELECT run_id, $15::text FROM r
    WHERE $15::text IS NOT NULL
), st AS (
    INSERT INTO {{s}}.streams (path, header) SELECT $12, $13 FROM r
    ON CONFLICT (path) DO UPDATE SET header = coalesce(streams.header, excluded.header)
    RETURNING pg_notify({{ch}}, $14::text) AS notified
)
SELECT count(*) FROM r""",
    # $1 workflow, $2 keys
    "keyed_runs": "SELECT key, run_id, fingerprint FROM {s}.run_keys "
    "WHERE workflow_name = $1 AND key = ANY($2::text[])",
    # $1 owner, $2 milliseconds
    "heartbeat": "INSERT INTO {s}.owners (owner, heartbeat_ms) VALUES ($1, $2) "
    "ON CONFLICT (owner) DO UPDATE SET heartbeat_ms = greatest(owners.heartbeat_ms, $2)",
    "owner_of": "SELECT owner FROM {s}.run_owners WHERE run_id = $1",
    # $1 run, $2 new owner, $3 the owner it must still have
    "claim_run": "UPDATE {s}.run_owners SET owner = $2 WHERE run_id = $1 AND owner = $3",
    "claim_unowned": "INSERT INTO {s}.run_owners (run_id, owner) VALUES ($1, $2) "
    "ON CONFLICT (run_id) DO NOTHING",
    # $1 owner, $2 admitted before (ISO text)
    "orphans_of_owner": "SELECT r.run_id FROM {s}.runs r JOIN {s}.run_owners o "
    "ON o.run_id = r.run_id WHERE r.status = 'active' AND o.owner = $1 AND r.started_at < $2",
    # $1 heartbeat before (ms), $2 admitted before (ISO text)
    "orphans": "SELECT r.run_id FROM {s}.runs r LEFT JOIN {s}.run_owners o ON o.run_id = r.run_id "
    "LEFT JOIN {s}.owners h ON h.owner = o.owner WHERE r.status = 'active' AND "
    "(h.heartbeat_ms < $1 OR (h.heartbeat_ms IS NULL AND r.started_at < $2))",
    # $1 heartbeat before (ms), $2 owner (or null: every owner)
    "prune_owners": "DELETE FROM {s}.owners h WHERE h.heartbeat_ms < $1 "
    "AND ($2::text IS NULL OR h.owner = $2::text) AND NOT EXISTS (SELECT 1 FROM {s}.run_owners o "
    "JOIN {s}.runs r ON r.run_id = o.run_id WHERE o.owner = h.owner AND r.status = 'active') "
    "RETURNING h.owner",
    # $1 path, $2 notify payload
    "create": "INSERT INTO {s}.streams (path) VALUES ($1) ON CONFLICT (path) DO NOTHING "
    "RETURNING pg_notify({ch}, $2::text) AS notified",
    # $1 path, $2 notify payload
    "close": "UPDATE {s}.streams SET closed = true WHERE path = $1 AND NOT closed "
    "RETURNING {if_watched_2} AS notified",
    # $1 path, $2 seconds: a waiter's mark (see above), and the stream's state after it.
    "watch": "UPDATE {s}.streams "
    "SET watched_until = greatest(watched_until, now() + make_interval(secs => $2::float8)) "
    "WHERE path = $1 RETURNING length, closed",
    # $1 path, $2 after, $3 limit: the stream's state and a page of its events, one snapshot.
    "read": """
SELECT s.length, s.closed, e.seq, e.data
  FROM {s}.streams AS s
  LEFT JOIN LATERAL (
      SELECT seq, data FROM {s}.events
       WHERE path = s.path AND seq > $2 ORDER BY seq LIMIT $3
  ) AS e ON true
 WHERE s.path = $1
 ORDER BY e.seq""",
    "get_run": f"SELECT {_COLUMNS} FROM {{s}}.runs WHERE run_id = $1",
    # Rebuild blocks every writer (their row locks conflict with EXCLUSIVE), never a reader.
    "rebuild_lock": "LOCK TABLE {s}.streams, {s}.runs IN EXCLUSIVE MODE",
    "rebuild_clear": "DELETE FROM {s}.runs",
    "rebuild_headers": f"SELECT path, header FROM {{s}}.streams WHERE {_RUNS_PREFIX}",
    "rebuild_events": f"SELECT path, data FROM {{s}}.events WHERE type IN {LIFECYCLE_TYPES_SQL} "
    f"AND {_RUNS_PREFIX} ORDER BY path, seq",
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Statements:
    """Every statement, formatted once. ``schema`` is already a quoted identifier."""

    append: str
    write_locked: str
    lock: str
    meta: str
    header: str
    admit: str
    admit_keyed: str
    keyed_runs: str
    heartbeat: str
    owner_of: str
    claim_run: str
    claim_unowned: str
    orphans_of_owner: str
    orphans: str
    prune_owners: str
    create: str
    close: str
    watch: str
    read: str
    get_run: str
    rebuild_lock: str
    rebuild_clear: str
    rebuild_headers: str
    rebuild_events: str

    def __init__(self, schema: str, channel: str) -> None:
        self.schema = schema
        self.channel = channel
        ch = _literal(channel)
        watched = {
            f"if_watched_{n}": _IF_WATCHED.format(ch=ch, payload=f"${n}::text") for n in (2, 6)
        }
        for name, template in _TEMPLATES.items():
            setattr(self, name, template.format(s=schema, ch=ch, **watched))
