"""``FlueClient``: the synchronous client of a flue_actors (or Flue) gateway."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal

import httpx

from .._jsonvalue import UNSET, loads
from .._records import RunPage, RunRecord, RunStatus
from ._protocol import (
    Invocation,
    LiveMode,
    RunSettlement,
    StreamFollower,
    WorkflowRun,
    invocation_from,
    invocation_request,
    raise_for_error,
)

__all__ = ["FlueClient", "RunEventStream"]

_LIVE_TIMEOUT = httpx.Timeout(10.0, read=None)


class RunEventStream:
    """Iterate a run's events. ``offset`` is the checkpoint to resume from later."""

    def __init__(self, http: httpx.Client, run_id: str, follower: StreamFollower, retries: int):
        self._http = http
        self._path = f"/runs/{run_id}"
        self._follower = follower
        self._retries = retries

    @property
    def offset(self) -> str:
        return self._follower.offset

    def __iter__(self) -> Generator[dict[str, Any], None, None]:
        follower = self._follower
        failures = 0
        while not follower.done:
            try:
                for events, next_offset in self._batches():
                    failures = 0
                    yield from events
                    follower.offset = next_offset
            except httpx.TransportError:
                # A dropped connection: resume from the checkpoint, with a short backoff.
                failures += 1
                if failures > self._retries:
                    raise
                time.sleep(min(0.1 * 2**failures, 2.0))

    def _batches(self) -> Iterator[tuple[list[dict[str, Any]], str]]:
        follower = self._follower
        params = follower.params()
        if follower.live == "sse":
            follower.start_sse()
            with self._http.stream("GET", self._path, params=params, timeout=_LIVE_TIMEOUT) as rsp:
                if rsp.status_code >= 400:
                    rsp.read()
                    raise_for_error(rsp)
                for line in rsp.iter_lines():
                    batch = follower.feed_sse(line)
                    if batch is not None:
                        yield batch
                        if follower.done:
                            return
            return
        timeout = _LIVE_TIMEOUT if follower.live else httpx.USE_CLIENT_DEFAULT
        yield follower.absorb(self._http.get(self._path, params=params, timeout=timeout))


class _Workflows:
    def __init__(self, http: httpx.Client, retries: int) -> None:
        self._http = http
        self._retries = retries

    def invoke(
        self,
        name: str,
        input: Any = UNSET,
        *,
        wait: Literal["result"] | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation:
        """``POST /workflows/{name}``: the run id, and with ``wait="result"`` its result.
        ``idempotency_key``: sent as ``Idempotency-Key``; a repeated key with the same input
        answers the run it admitted (safe to retry)."""
        request = invocation_request(input, wait, idempotency_key)
        timeout = _LIVE_TIMEOUT if wait else httpx.USE_CLIENT_DEFAULT
        return invocation_from(self._http.post(f"/workflows/{name}", timeout=timeout, **request))

    def run(
        self,
        name: str,
        input: Any = UNSET,
        *,
        on_event: Callable[[dict[str, Any]], object] | None = None,
        live: Literal[True, "long-poll", "sse"] = True,
    ) -> WorkflowRun:
        """Invoke ``name`` and follow its events until it ends: its run id and result, or
        :class:`FlueExecutionError` if it failed. ``on_event`` sees every event as it comes."""
        run_id = self.invoke(name, input).run_id
        settlement = RunSettlement(run_id)
        follower = StreamFollower(live=live)
        events = iter(RunEventStream(self._http, run_id, follower, self._retries))
        try:
            for event in events:
                if on_event is not None:
                    on_event(event)
                if settlement.observe(event) and settlement.outcome is not None:
                    return settlement.outcome
        finally:
            events.close()
        # The stream closed without this run's run_end: its record has the last word.
        response = self._http.get(f"/runs/{run_id}", params={"meta": ""})
        raise_for_error(response)
        return settlement.from_record(loads(response.content))


class _Runs:
    def __init__(self, http: httpx.Client, retries: int) -> None:
        self._http = http
        self._retries = retries

    def get(self, run_id: str) -> RunRecord:
        """The run's record (``GET /runs/{id}?meta``)."""
        response = self._http.get(f"/runs/{run_id}", params={"meta": ""})
        raise_for_error(response)
        return RunRecord.from_wire(loads(response.content))

    def events(self, run_id: str, *, offset: str = "-1", tail: int | None = None) -> list[Any]:
        """Every event after ``offset`` stored so far (catch-up reads until up to date)."""
        follower = StreamFollower(offset=offset, tail=tail, live=False)
        return list(RunEventStream(self._http, run_id, follower, 0))

    def stream(
        self, run_id: str, *, offset: str = "-1", tail: int | None = None, live: LiveMode = True
    ) -> RunEventStream:
        """Follow a run's events until its stream closes (``live``: ``True`` long-polls,
        ``"sse"`` uses server-sent events), resuming by itself after a dropped connection."""
        follower = StreamFollower(offset=offset, tail=tail, live=live)
        return RunEventStream(self._http, run_id, follower, self._retries)

    def list(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        params = {"workflow": workflow, "status": status, "limit": limit, "cursor": cursor}
        response = self._http.get(
            "/runs", params={k: v for k, v in params.items() if v is not None}
        )
        raise_for_error(response)
        return RunPage.from_wire(loads(response.content))

    def cancel(self, run_id: str) -> None:
        raise_for_error(self._http.post(f"/runs/{run_id}/cancel"))


class FlueClient:
    """A client of the gateway's HTTP protocol (the twin of Flue's ``@flue/sdk``)::

    with FlueClient("http://127.0.0.1:8000") as client:
        run_id = client.workflows.invoke("summarize", {"text": "..."}).run_id
        for event in client.runs.stream(run_id):
            ...
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.workflows = _Workflows(self._http, retries)
        self.runs = _Runs(self._http, retries)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlueClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
