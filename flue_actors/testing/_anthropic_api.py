"""``anthropic_api``: the Anthropic Messages API emulated at the HTTP layer (respx), so tests
run the real :class:`~flue_actors.models.AnthropicProvider`, SDK and streaming included.

The anthropic SDK (2.x) talks through ``httpx2``, which respx does not patch; requests to the
emulated base URL are bridged from ``httpx2`` into a respx router, and every other ``httpx2``
request is refused unless it goes to a loopback address. The router also guards ``httpx``
itself the same way. Nothing reaches the network.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
import respx

from ..models import AnthropicProvider
from ._batches_wire import BytesAnswer, MessageBatches
from ._messages_wire import (
    STREAM_HEADERS,
    Answer,
    FailureKind,
    JsonAnswer,
    MessagesScript,
    Stall,
    StreamAnswer,
    error_answer,
)

__all__ = ["AnthropicApi", "AnthropicApiExhaustedError"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AnthropicApiExhaustedError(AssertionError):
    """The code under test made more Messages API calls than the test scripted."""


class AnthropicApi:
    """A scripted Messages API at ``base_url`` (a loopback placeholder nothing listens on).

    ``reply(...)`` and ``fail(...)`` queue answers in order, as ``FakeModel`` does;
    ``requests`` holds every request body (parsed JSON), ``headers`` their headers. A call
    beyond the script is answered with an error and recorded in ``exhausted``; the fixture
    re-raises it at teardown so the test fails loudly. The answers themselves are built by
    :class:`~flue_actors.testing._messages_wire.MessagesScript`, as the out-of-process
    ``messages_server`` builds them.

    ``batches`` emulates the Message Batches API (:class:`~flue_actors.testing._batches_wire.
    MessageBatches`): each batched request takes the next scripted answer, as a plain request
    would. Batches end at once unless ``batches.processing_seconds`` says otherwise; then
    ``batches.advance(seconds)``, ``batches.complete()`` or ``batches.expire()`` move them on
    (``batch_clock`` is the emulation's clock, in seconds), and ``await wait_for_batches(n)``
    returns once ``n`` batches were created.

    ``poll_sleep`` is the sleep for ``ModelBatches(sleep=...)`` against this emulation: a
    collector's poll waits until the batches have moved since its last answer (created, ended,
    canceled, time advanced), never spinning on a batch that is processing until the test ends
    it; ``await wait_for_parked_polls(n)`` returns once ``n`` polls wait so.
    """

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:9",
        api_key: str = "sk-ant-test",
        batch_clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.exhausted: AnthropicApiExhaustedError | None = None
        self.streams_closed = 0
        self._script = MessagesScript()
        self.batches = MessageBatches(self._respond, base_url=self.base_url, clock=batch_clock)
        self._batch_created = asyncio.Event()
        # What the emulation's batches looked like (their ``changes``) when each task last had
        # an answer from them: a poll runs in one task, request and sleep alike.
        self._answered: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._batches_moved = asyncio.Event()
        self._parked_polls = 0
        self._parked = asyncio.Event()
        self.batches.on_change(self._batches_moved.set)
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self.router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
        self.router.post(f"{self.base_url}/v1/messages").mock(side_effect=self._handle)
        self.router.route(
            host=self._host, port=self._port, path__startswith="/v1/messages/batches"
        ).mock(side_effect=self._handle_batches)
        self.router.route(host=self._host, port=self._port).respond(
            404, json={"type": "error", "error": {"type": "not_found_error", "message": "?"}}
        )
        self.router.route(host__in=_LOOPBACK).pass_through()
        self._original: Any = None

    @property
    def provider(self) -> AnthropicProvider:
        """A provider aimed at this emulation."""
        return AnthropicProvider(api_key=self.api_key, base_url=self.base_url)

    # --- the script ---------------------------------------------------------------------------

    def reply(
        self,
        text: str = "",
        *,
        tool_calls: Sequence[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]] = (),
        thinking: str | None = None,
        chunks: Sequence[str] | None = None,
        usage: dict[str, int] | None = None,
        stop_reason: str | None = None,
        model: str | None = None,
    ) -> AnthropicApi:
        """Queue one assistant message. Tool calls are ``(name, input)`` (ids ``toolu_1``, ...)
        or ``(name, input, id)``; ``chunks`` splits the text into deltas; ``usage`` uses the
        API's names (``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
        ``cache_creation_input_tokens``)."""
        self._script.reply(
            text,
            tool_calls=tool_calls,
            thinking=thinking,
            chunks=chunks,
            usage=usage,
            stop_reason=stop_reason,
            model=model,
        )
        return self

    def fail(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        kind: FailureKind = "status",
        after_chunks: int = 0,
        message: str | None = None,
    ) -> AnthropicApi:
        """Queue one failure: an HTTP error ``status`` (with a ``retry-after`` header when
        given), ``kind="context_overflow"`` (400, prompt is too long), or
        ``kind="stream_cut"`` (a 200 stream that sends ``after_chunks`` text deltas, then an
        ``overloaded_error`` event, as the API does when it sheds load mid-answer)."""
        self._script.fail(
            status=status,
            retry_after=retry_after,
            kind=kind,
            after_chunks=after_chunks,
            message=message,
        )
        return self

    def stall(self) -> asyncio.Event:
        """Queue a stream that sends ``message_start`` and then nothing; the returned event is
        set when it has started. ``streams_closed`` counts the streams the client closed."""
        return self._script.stall().started

    # --- serving ------------------------------------------------------------------------------

    def _respond(self, body: Any) -> Answer:
        """The next scripted answer, for a plain request and a batched one alike."""
        answer = self._script.answer(body)
        if answer is None:
            answered = len(self.requests) + len(self.batches.requests)
            self.exhausted = AnthropicApiExhaustedError(
                f"anthropic_api has no answer for Messages API request #{answered}: "
                f"the script held {answered - 1}. Queue more with "
                "anthropic_api.reply(...) or anthropic_api.fail(...)."
            )
            answer = error_answer(400, "invalid_request_error", str(self.exhausted))
        return answer

    def _handle_batches(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        before = self.batches.created
        query = dict(request.url.params)
        answer = self.batches.handle(request.method, request.url.path, query, body)
        if self.batches.created > before:
            self._batch_created.set()
        task = _current_task()
        if task is not None:
            self._answered[task] = self.batches.changes
        if isinstance(answer, BytesAnswer):
            return httpx.Response(answer.status, content=answer.body, headers=dict(answer.headers))
        return httpx.Response(answer.status, json=answer.body, headers=dict(answer.headers))

    async def wait_for_batches(self, count: int = 1) -> None:
        """Return once at least ``count`` batches were created (those deleted included)."""
        while self.batches.created < count:
            self._batch_created.clear()
            await self._batch_created.wait()

    async def poll_sleep(self, seconds: float) -> None:
        """Instead of ``seconds``: until the batches have moved since the calling task's last
        answer from them. A task that never asked (a collector's window) goes on at once."""
        task = _current_task()
        answered = None if task is None else self._answered.get(task)
        if answered is None:
            await asyncio.sleep(0)
            return
        self._parked_polls += 1
        self._parked.set()
        try:
            while self.batches.changes == answered:
                self._batches_moved.clear()
                await self._batches_moved.wait()
        finally:
            self._parked_polls -= 1

    async def wait_for_parked_polls(self, count: int = 1) -> None:
        """Return once at least ``count`` polls wait in ``poll_sleep`` for the batches to move."""
        while self._parked_polls < count:
            self._parked.clear()
            await self._parked.wait()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        answer = self._respond(body)
        if isinstance(answer, JsonAnswer):
            return httpx.Response(answer.status, json=answer.body, headers=dict(answer.headers))
        return httpx.Response(200, headers=dict(STREAM_HEADERS), content=self._stream(answer))

    async def _stream(self, answer: StreamAnswer) -> AsyncIterator[bytes]:
        for event in answer.events:
            yield event
        if answer.stall is not None:
            yield await self._stalled(answer.stall)

    async def _stalled(self, stall: Stall) -> bytes:
        try:
            stall.started.set()
            await asyncio.Event().wait()  # until the client goes away
        finally:
            self.streams_closed += 1
        return b""

    # --- interception -------------------------------------------------------------------------

    def start(self) -> None:
        """Intercept: the respx router for ``httpx``, the bridge for the SDK's ``httpx2``."""
        self.router.start()
        original = httpx2.AsyncHTTPTransport.handle_async_request
        self._original = original
        api = self

        async def handle(transport: Any, request: httpx2.Request) -> httpx2.Response:
            url = request.url
            if url.host == api._host and (url.port or 80) == api._port:
                return await api._bridge(request)
            if url.host in _LOOPBACK:
                return await original(transport, request)
            raise httpx2.ConnectError(
                f"anthropic_api: refusing to reach {url} from a test (only the emulated "
                "Messages API and loopback addresses are reachable)",
                request=request,
            )

        setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle)  # noqa: B010

    def stop(self) -> None:
        if self._original is not None:
            setattr(httpx2.AsyncHTTPTransport, "handle_async_request", self._original)  # noqa: B010
            self._original = None
        self.router.stop(quiet=True)

    async def _bridge(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        response = await self.router.async_handler(
            httpx.Request(
                request.method,
                str(request.url),
                headers=list(request.headers.raw),
                content=content,
            )
        )
        headers = list(response.headers.raw)
        try:
            body = response.content  # respx read plain bodies already
        except httpx.ResponseNotRead:
            return httpx2.Response(
                response.status_code,
                headers=headers,
                stream=_BridgedStream(response),
                request=request,
            )
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a synchronous client: no loop, no task
        return None


class _BridgedStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
