"""``AsyncFlueClient``: the asyncio twin of :class:`~flue_actors.client.FlueClient`.

The protocol logic lives in ``protocol.py``; this module and ``sync_client.py`` only move bytes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
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

__all__ = ["AsyncFlueClient", "AsyncRunEventStream"]

_LIVE_TIMEOUT = httpx.Timeout(10.0, read=None)


class AsyncRunEventStream:
    """Iterate a run's events with ``async for``. ``offset`` is the checkpoint to resume from."""

    def __init__(
        self, http: httpx.AsyncClient, run_id: str, follower: StreamFollower, retries: int
    ) -> None:
        self._http = http
        self._path = f"/runs/{run_id}"
        self._follower = follower
        self._retries = retries

    @property
    def offset(self) -> str:
        return self._follower.offset

    async def __aiter__(self) -> AsyncGenerator[dict[str, Any], None]:
        follower = self._follower
        failures = 0
        while not follower.done:
            try:
                async for events, next_offset in self._batches():
                    failures = 0
                    for event in events:
                        yield event
                    follower.offset = next_offset
            except httpx.TransportError:
                failures += 1
                if failures > self._retries:
                    raise
                await asyncio.sleep(min(0.1 * 2**failures, 2.0))

    async def _batches(self) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        follower = self._follower
        params = follower.params()
        if follower.live == "sse":
            follower.start_sse()
            async with self._http.stream(
                "GET", self._path, params=params, timeout=_LIVE_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_error(response)
                async for line in response.aiter_lines():
                    batch = follower.feed_sse(line)
                    if batch is not None:
                        yield batch
                        if follower.done:
                            return
            return
        timeout = _LIVE_TIMEOUT if follower.live else httpx.USE_CLIENT_DEFAULT
        yield follower.absorb(await self._http.get(self._path, params=params, timeout=timeout))


class _AsyncWorkflows:
    def __init__(self, http: httpx.AsyncClient, retries: int) -> None:
        self._http = http
        self._retries = retries

    async def invoke(
        self,
        name: str,
        input: Any = UNSET,
        *,
        wait: Literal["result"] | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation:
        """Invoke a workflow. ``idempotency_key``: sent as ``Idempotency-Key``; a repeated
        key with the same input answers the run it admitted (safe to retry)."""
        request = invocation_request(input, wait, idempotency_key)
        timeout = _LIVE_TIMEOUT if wait else httpx.USE_CLIENT_DEFAULT
        response = await self._http.post(f"/workflows/{name}", timeout=timeout, **request)
        return invocation_from(response)

    async def run(
        self,
        name: str,
        input: Any = UNSET,
        *,
        on_event: Callable[[dict[str, Any]], object] | None = None,
        live: Literal[True, "long-poll", "sse"] = True,
    ) -> WorkflowRun:
        """Invoke ``name`` and follow its events until it ends (see ``FlueClient``);
        ``on_event`` may be a plain or an async function."""
        run_id = (await self.invoke(name, input)).run_id
        settlement = RunSettlement(run_id)
        follower = StreamFollower(live=live)
        events = aiter(AsyncRunEventStream(self._http, run_id, follower, self._retries))
        try:
            async for event in events:
                if on_event is not None:
                    shown = on_event(event)
                    if inspect.isawaitable(shown):
                        await shown
                if settlement.observe(event) and settlement.outcome is not None:
                    return settlement.outcome
        finally:
            await events.aclose()
        response = await self._http.get(f"/runs/{run_id}", params={"meta": ""})
        raise_for_error(response)
        return settlement.from_record(loads(response.content))


class _AsyncRuns:
    def __init__(self, http: httpx.AsyncClient, retries: int) -> None:
        self._http = http
        self._retries = retries

    async def get(self, run_id: str) -> RunRecord:
        response = await self._http.get(f"/runs/{run_id}", params={"meta": ""})
        raise_for_error(response)
        return RunRecord.from_wire(loads(response.content))

    async def events(
        self, run_id: str, *, offset: str = "-1", tail: int | None = None
    ) -> list[Any]:
        follower = StreamFollower(offset=offset, tail=tail, live=False)
        return [event async for event in AsyncRunEventStream(self._http, run_id, follower, 0)]

    def stream(
        self, run_id: str, *, offset: str = "-1", tail: int | None = None, live: LiveMode = True
    ) -> AsyncRunEventStream:
        follower = StreamFollower(offset=offset, tail=tail, live=live)
        return AsyncRunEventStream(self._http, run_id, follower, self._retries)

    async def list(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        params = {"workflow": workflow, "status": status, "limit": limit, "cursor": cursor}
        response = await self._http.get(
            "/runs", params={k: v for k, v in params.items() if v is not None}
        )
        raise_for_error(response)
        return RunPage.from_wire(loads(response.content))

    async def cancel(self, run_id: str) -> None:
        raise_for_error(await self._http.post(f"/runs/{run_id}/cancel"))


class AsyncFlueClient:
    """``async with AsyncFlueClient(url) as client: await client.workflows.invoke(...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.workflows = _AsyncWorkflows(self._http, retries)
        self.runs = _AsyncRuns(self._http, retries)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFlueClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
