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
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import httpx2
import respx

from ..models import AnthropicProvider

__all__ = ["AnthropicApi", "AnthropicApiExhaustedError"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AnthropicApiExhaustedError(AssertionError):
    """The code under test made more Messages API calls than the test scripted."""


@dataclass(frozen=True)
class _Reply:
    text: str
    tool_calls: Sequence[tuple[str, dict[str, Any], str]]
    thinking: str | None
    chunks: Sequence[str] | None
    usage: dict[str, int]
    stop_reason: str | None
    model: str | None


@dataclass(frozen=True)
class _Failure:
    kind: Literal["status", "context_overflow", "stream_cut"]
    status: int
    retry_after: float | None
    after_chunks: int
    message: str | None


@dataclass
class _Stall:
    """A stream that starts and then never ends (until the client goes away)."""

    started: asyncio.Event = field(default_factory=asyncio.Event)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class AnthropicApi:
    """A scripted Messages API at ``base_url`` (a loopback placeholder nothing listens on).

    ``reply(...)`` and ``fail(...)`` queue answers in order, as ``FakeModel`` does;
    ``requests`` holds every request body (parsed JSON), ``headers`` their headers. A call
    beyond the script is answered with an error and recorded in ``exhausted``; the fixture
    re-raises it at teardown so the test fails loudly.
    """

    def __init__(
        self, *, base_url: str = "http://127.0.0.1:9", api_key: str = "sk-ant-test"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.exhausted: AnthropicApiExhaustedError | None = None
        self.streams_closed = 0
        self._script: deque[_Reply | _Failure | _Stall] = deque()
        self._ids = 0
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self.router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
        self.router.post(f"{self.base_url}/v1/messages").mock(side_effect=self._handle)
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
        calls = []
        for call in tool_calls:
            if len(call) == 3:
                calls.append(call)
            else:
                self._ids += 1
                calls.append((call[0], call[1], f"toolu_{self._ids}"))
        self._script.append(
            _Reply(
                text,
                calls,
                thinking,
                chunks,
                usage or {"input_tokens": 10, "output_tokens": 5},
                stop_reason,
                model,
            )
        )
        return self

    def fail(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        kind: Literal["status", "context_overflow", "stream_cut"] = "status",
        after_chunks: int = 0,
        message: str | None = None,
    ) -> AnthropicApi:
        """Queue one failure: an HTTP error ``status`` (with a ``retry-after`` header when
        given), ``kind="context_overflow"`` (400, prompt is too long), or
        ``kind="stream_cut"`` (a 200 stream that sends ``after_chunks`` text deltas, then an
        ``overloaded_error`` event, as the API does when it sheds load mid-answer)."""
        self._script.append(_Failure(kind, status, retry_after, after_chunks, message))
        return self

    def stall(self) -> asyncio.Event:
        """Queue a stream that sends ``message_start`` and then nothing; the returned event is
        set when it has started. ``streams_closed`` counts the streams the client closed."""
        stall = _Stall()
        self._script.append(stall)
        return stall.started

    # --- serving ------------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if not self._script:
            self.exhausted = AnthropicApiExhaustedError(
                f"anthropic_api has no answer for Messages API request #{len(self.requests)}: "
                f"the script held {len(self.requests) - 1}. Queue more with "
                "anthropic_api.reply(...) or anthropic_api.fail(...)."
            )
            return self._error(400, "invalid_request_error", str(self.exhausted))
        answer = self._script.popleft()
        model = str(body.get("model", "claude"))
        if isinstance(answer, _Failure):
            if answer.kind == "context_overflow":
                return self._error(
                    400,
                    "invalid_request_error",
                    answer.message or "prompt is too long: 210000 tokens > 200000 maximum",
                )
            if answer.kind == "status":
                kind = _ERROR_TYPES.get(answer.status, "api_error")
                headers = {}
                if answer.retry_after is not None:
                    headers["retry-after"] = f"{answer.retry_after:g}"
                return self._error(answer.status, kind, answer.message or kind, headers)
            return self._stream(self._cut(model, answer))
        if isinstance(answer, _Stall):
            return self._stream(self._stalled(model, answer))
        if body.get("stream"):
            return self._stream(self._events(model, answer))
        return httpx.Response(200, json=self._message(model, answer))

    def _error(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        payload = {"type": "error", "error": {"type": kind, "message": message}}
        return httpx.Response(
            status, json=payload, headers={"request-id": "req_1", **(headers or {})}
        )

    def _stream(self, events: AsyncIterator[bytes]) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)

    def _start(self, model: str, usage: dict[str, int]) -> bytes:
        self._ids += 1
        message: dict[str, Any] = {
            "id": f"msg_{self._ids}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": 1,
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            },
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _blocks(self, reply: _Reply) -> Iterator[bytes]:
        index = 0
        if reply.thinking is not None:
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
            for delta in (
                {"type": "thinking_delta", "thinking": reply.thinking},
                {"type": "signature_delta", "signature": f"sig-{index}"},
            ):
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        if reply.text:
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for chunk in reply.chunks if reply.chunks is not None else [reply.text]:
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for name, arguments, call_id in reply.tool_calls:
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                },
            )
            raw = json.dumps(arguments)
            middle = len(raw) // 2  # two partial deltas, as the API splits input JSON
            for part in (raw[:middle], raw[middle:]):
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1

    def _stop_reason(self, reply: _Reply) -> str:
        return reply.stop_reason or ("tool_use" if reply.tool_calls else "end_turn")

    async def _events(self, model: str, reply: _Reply) -> AsyncIterator[bytes]:
        yield self._start(reply.model or model, reply.usage)
        yield _sse("ping", {"type": "ping"})
        for event in self._blocks(reply):
            yield event
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                "usage": {"output_tokens": reply.usage.get("output_tokens", 0)},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})

    async def _cut(self, model: str, failure: _Failure) -> AsyncIterator[bytes]:
        yield self._start(model, {"input_tokens": 10})
        yield _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for number in range(1, failure.after_chunks + 1):
            yield _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": f"chunk{number} "},
                },
            )
        yield _sse(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )

    async def _stalled(self, model: str, stall: _Stall) -> AsyncIterator[bytes]:
        try:
            yield self._start(model, {"input_tokens": 10})
            stall.started.set()
            await asyncio.Event().wait()  # until the client goes away
        finally:
            self.streams_closed += 1

    def _message(self, model: str, reply: _Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig-0"})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for name, arguments, call_id in reply.tool_calls:
            content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
        self._ids += 1
        return {
            "id": f"msg_{self._ids}",
            "type": "message",
            "role": "assistant",
            "model": reply.model or model,
            "content": content,
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": {
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
                **reply.usage,
            },
        }

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


class _BridgedStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
