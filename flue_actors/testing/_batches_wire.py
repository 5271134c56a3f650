"""The Anthropic Message Batches API, emulated once for both emulations of the Messages API:
the in-process ``anthropic_api`` fixture (respx) and the out-of-process ``messages_server``.

Each request of a batch is answered, when the batch is created, by the same responder the plain
Messages path uses (the queued script, or the server's default answer), with ``stream`` off:
a 200 answer becomes a ``succeeded`` result, an error answer an ``errored`` one (its error body
as the API nests it), a queued ``stall`` a request that never finishes and so ``expired`` once
the batch expires (or is completed by hand). Results are served as JSONL in reverse request
order, since the API promises no order and callers must match results by ``custom_id``.

Time is the emulation's: ``clock`` (seconds, injectable) plus whatever ``advance`` added. A batch
ends ``processing_seconds`` after it was created (``None``: only when told), expires
``expiry_seconds`` after it (24 h, as the API), and ``complete`` / ``expire`` / ``cancel`` end
it at once. ``changes`` counts the moves a poll could see, and ``on_change`` listeners hear
of each, so a test's poll can wait for the next one instead of asking again and again. Pure
data and ``json``: importing this module costs nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ._messages_wire import Answer, JsonAnswer, StreamAnswer, error_answer

__all__ = [
    "BATCHES_PATH",
    "MAX_BATCH_REQUESTS",
    "BytesAnswer",
    "MessageBatches",
    "Responder",
]

BATCHES_PATH: Final = "/v1/messages/batches"
MAX_BATCH_REQUESTS: Final = 100_000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PATH = re.compile(r"^/v1/messages/batches(?:/([^/]+))?(?:/(cancel|results))?/?$")

Responder = Callable[[Mapping[str, Any]], Answer]


@dataclass(frozen=True)
class BytesAnswer:
    """A non-JSON body (the results' JSONL)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Request:
    custom_id: str
    params: dict[str, Any]
    outcome: dict[str, Any] | None  # the result once processed; None: never finishes (stall)
    result: dict[str, Any] | None = None  # set when the request has ended


@dataclass
class _Batch:
    id: str
    created: float
    ready: float  # when processed requests end
    expires: float
    requests: list[_Request]
    cancel_initiated: float | None = None
    ended: float | None = None


def _rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _outcome(answer: Answer) -> dict[str, Any] | None:
    if isinstance(answer, StreamAnswer):
        if answer.stall is not None:
            return None
        # A stream cut short: the API sheds load; inside a batch that is an errored request.
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return {"type": "errored", "error": {"type": "error", "error": error}}
    if answer.status == 200:
        return {"type": "succeeded", "message": answer.body}
    return {"type": "errored", "error": answer.body}


class MessageBatches:
    """The batches one emulated API holds. ``created`` counts batches made; ``requests`` holds
    every batched request (``custom_id`` and ``params``) in submission order; ``changes``
    counts every change of what the API would answer (a batch made, ended, canceled or
    deleted, time moved on)."""

    def __init__(
        self,
        respond: Responder,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
        processing_seconds: float | None = 0.0,
        expiry_seconds: float = 86_400.0,
    ) -> None:
        self._respond = respond
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._advanced = 0.0
        self.processing_seconds = processing_seconds
        self.expiry_seconds = expiry_seconds
        self._batches: dict[str, _Batch] = {}
        self._made = 0
        self.requests: list[dict[str, Any]] = []
        self.changes = 0
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change (synchronously, in the caller's thread)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        self.changes += 1
        for listener in self._listeners:
            listener()

    # --- controls -------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._advanced

    def advance(self, seconds: float) -> None:
        """Move the emulation's time on: batches whose processing time has passed end."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._advanced += seconds
        self._changed()

    def complete(self, batch_id: str | None = None) -> int:
        """End processing now (one batch, or every one still in progress): queued answers become
        their results, stalled requests expire. How many batches ended."""
        return self._end(batch_id, expire_all=False)

    def expire(self, batch_id: str | None = None) -> int:
        """Expire now: every request still processing ends ``expired``."""
        return self._end(batch_id, expire_all=True)

    def clear(self) -> None:
        """Forget every batch; ids count from 1 again."""
        self._batches.clear()
        self.requests.clear()
        self._made = 0
        self._changed()

    @property
    def created(self) -> int:
        """How many batches were created (deleted ones included)."""
        return self._made

    def views(self) -> list[dict[str, Any]]:
        """Every batch as the API shows it, oldest first."""
        return [self._view(batch) for batch in self._batches.values()]

    def _end(self, batch_id: str | None, *, expire_all: bool) -> int:
        now = self.now()
        ended = 0
        for batch in self._selected(batch_id):
            self._refresh(batch, now)
            if batch.ended is not None:
                continue
            for request in batch.requests:
                if request.result is None:
                    if expire_all or request.outcome is None:
                        request.result = {"type": "expired"}
                    else:
                        request.result = request.outcome
            batch.ended = now
            ended += 1
        if ended:
            self._changed()
        return ended

    def _selected(self, batch_id: str | None) -> list[_Batch]:
        if batch_id is None:
            return list(self._batches.values())
        batch = self._batches.get(batch_id)
        if batch is None:
            raise KeyError(f"no batch {batch_id!r}")
        return [batch]

    # --- the API --------------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return _PATH.match(path) is not None

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: Any
    ) -> JsonAnswer | BytesAnswer:
        match = _PATH.match(path)
        if match is None:
            return error_answer(404, "not_found_error", f"Not found: {path}")
        batch_id, action = match.group(1), match.group(2)
        if batch_id is None:
            if method == "POST":
                return self._create(body)
            if method == "GET":
                return self._list(query)
            return error_answer(405, "invalid_request_error", f"{method} {path}")
        batch = self._batches.get(batch_id)
        if batch is None:
            return error_answer(404, "not_found_error", f"no message batch {batch_id!r}")
        self._refresh(batch, self.now())
        if action is None and method == "GET":
            return JsonAnswer(200, self._view(batch), {"request-id": "req_1"})
        if action is None and method == "DELETE":
            if batch.ended is None:
                return error_answer(
                    400, "invalid_request_error", "a batch must end before it can be deleted"
                )
            del self._batches[batch_id]
            self._changed()
            return JsonAnswer(200, {"id": batch_id, "type": "message_batch_deleted"})
        if action == "cancel" and method == "POST":
            if batch.ended is None and batch.cancel_initiated is None:
                batch.cancel_initiated = self.now()
                self._changed()
            view = self._view(batch)
            # The API answers ``canceling`` and ends the batch soon after: here, at once.
            self._refresh(batch, self.now())
            return JsonAnswer(200, view, {"request-id": "req_1"})
        if action == "results" and method == "GET":
            if batch.ended is None:
                return error_answer(
                    400, "invalid_request_error", f"batch {batch_id} has not ended yet"
                )
            lines = [
                json.dumps({"custom_id": request.custom_id, "result": request.result}) + "\n"
                for request in reversed(batch.requests)
            ]
            return BytesAnswer(200, "".join(lines).encode(), {"content-type": "application/binary"})
        return error_answer(405, "invalid_request_error", f"{method} {path}")

    def _create(self, body: Any) -> JsonAnswer:
        problem = _create_problem(body)
        if problem is not None:
            return error_answer(400, "invalid_request_error", problem)
        now = self.now()
        requests = []
        for item in body["requests"]:
            params = dict(item["params"])
            params.pop("stream", None)
            self.requests.append({"custom_id": item["custom_id"], "params": params})
            requests.append(_Request(item["custom_id"], params, _outcome(self._respond(params))))
        delay = self.processing_seconds
        self._made += 1
        batch = _Batch(
            id=f"msgbatch_{self._made:024d}",
            created=now,
            ready=float("inf") if delay is None else now + delay,
            expires=now + self.expiry_seconds,
            requests=requests,
        )
        self._batches[batch.id] = batch
        self._refresh(batch, now)
        self._changed()
        return JsonAnswer(200, self._view(batch), {"request-id": "req_1"})

    def _list(self, query: Mapping[str, str]) -> JsonAnswer:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return error_answer(400, "invalid_request_error", "limit is a number")
        if not 1 <= limit <= 1000:
            return error_answer(400, "invalid_request_error", "limit is between 1 and 1000")
        now = self.now()
        newest_first = list(reversed(self._batches.values()))
        for batch in newest_first:
            self._refresh(batch, now)
        ids = [batch.id for batch in newest_first]
        after, before = query.get("after_id"), query.get("before_id")
        if after is not None:
            start = ids.index(after) + 1 if after in ids else len(ids)
            page = newest_first[start : start + limit]
            has_more = start + limit < len(ids)
        elif before is not None:
            end = ids.index(before) if before in ids else 0
            page = newest_first[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            page = newest_first[:limit]
            has_more = limit < len(ids)
        return JsonAnswer(
            200,
            {
                "data": [self._view(batch) for batch in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            },
        )

    # --- state ----------------------------------------------------------------------------------

    def _refresh(self, batch: _Batch, now: float) -> None:
        if batch.ended is not None:
            return
        unfinished = sum(request.result is None for request in batch.requests)
        if now >= batch.ready:
            for request in batch.requests:
                if request.result is None and request.outcome is not None:
                    request.result = request.outcome
        if batch.cancel_initiated is not None:
            for request in batch.requests:
                if request.result is None:
                    request.result = {"type": "canceled"}
        elif now >= batch.expires:
            for request in batch.requests:
                if request.result is None:
                    request.result = {"type": "expired"}
        if all(request.result is not None for request in batch.requests):
            batch.ended = now
        if batch.ended is not None or unfinished != sum(r.result is None for r in batch.requests):
            self._changed()

    def _view(self, batch: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for request in batch.requests:
            counts["processing" if request.result is None else request.result["type"]] += 1
        if batch.ended is not None:
            status = "ended"
        elif batch.cancel_initiated is not None:
            status = "canceling"
        else:
            status = "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _rfc3339(batch.ended),
            "created_at": _rfc3339(batch.created),
            "expires_at": _rfc3339(batch.expires),
            "archived_at": None,
            "cancel_initiated_at": _rfc3339(batch.cancel_initiated),
            "results_url": f"{self.base_url}{BATCHES_PATH}/{batch.id}/results"
            if batch.ended is not None
            else None,
        }


def _create_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return "requests: a list of {custom_id, params} is required"
    requests = body["requests"]
    if not requests:
        return "requests: at least one request is required"
    if len(requests) > MAX_BATCH_REQUESTS:
        return f"requests: at most {MAX_BATCH_REQUESTS} requests per batch"
    seen: set[str] = set()
    for number, item in enumerate(requests):
        if not isinstance(item, dict):
            return f"requests.{number}: an object is required"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            return f"requests.{number}.custom_id: 1-64 letters, digits, '_' or '-'"
        if custom_id in seen:
            return f"requests.{number}.custom_id: {custom_id!r} is used twice in this batch"
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            return f"requests.{number}.params: an object is required"
        for name in ("model", "max_tokens", "messages"):
            if name not in params:
                return f"requests.{number}.params.{name}: Field required"
    return None
