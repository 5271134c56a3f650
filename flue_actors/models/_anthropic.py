"""``anthropic/<model>``: Claude through the official SDK's async client, streaming.

Our messages are pi-ai's shapes (see :mod:`.base`); this module translates them to the Messages
API, maps the raw stream events back to our stream events and content blocks, and turns every
SDK failure into a :class:`ModelRequestError` that says whether a retry may help. The SDK's own
retries are off: the harness owns retries, so one attempt here is one HTTP request.

The lightest correct use of the SDK we found (``benchmarks/bench_provider.py``):

- One SDK client per provider: one connection pool, reused by every call.
- The body this module builds is already the API's JSON: it is sent as its bytes through the
  SDK's documented request method for any endpoint (``client.post("/v1/messages",
  content=..., cast_to=httpx2.Response, stream=True)``), not ``messages.create``, whose walk
  over its typed parameters and re-encoding cost more CPU than the rest of the request. The
  SDK still builds and sends the request (auth, version and client headers, timeouts, its
  transport) and raises its typed ``APIStatusError`` s; ``testing/models/test_anthropic_wire.py``
  checks that the body and headers are what ``messages.create`` sends. When the SDK's
  OpenTelemetry spans are on, or for a model ``messages.create`` warns about (deprecated, or
  thinking configured the old way), the call goes through ``messages.create`` itself, so the
  spans and warnings stay the SDK's.
- The response is read through the SDK's own SSE decoder (``AsyncStream.raw_events``) as plain
  JSON: no typed pydantic event is built per SSE frame, since this module only copies fields
  out of each event, and not the accumulating ``messages.stream()`` helper (which builds a
  second copy of every message). An in-stream ``error`` event is raised as the SDK raises it
  (an ``APIStatusError`` carrying the event's body).
- No OpenTelemetry call span when nothing could record it: the SDK builds one per call (with
  its attributes) even when no OpenTelemetry SDK is configured, and throws it away. When the
  process has set no tracer provider (OpenTelemetry's default proxy, no
  ``OTEL_PYTHON_TRACER_PROVIDER``) and no ``ANTHROPIC_OPEN_TELEMETRY*`` variable is set, the
  client is made with the SDK's own switch ``open_telemetry=False``. This is decided when the
  client is made (at the provider's first call, or at ``prepare``, which ``serve`` and
  ``batch`` call at start-up, after loading the workflows): configure OpenTelemetry before
  that (a workflow module may) to get the SDK's spans, or pass ``open_telemetry=`` to choose.
- The transport is the SDK's own choice of two: its default (httpx2) or its aiohttp transport
  (``anthropic.DefaultAioHttpClient``), which costs less CPU per streamed call;
  ``flue-actors serve`` picks aiohttp (``FLUE_ANTHROPIC_TRANSPORT``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
from typing import TYPE_CHECKING, Any, Literal, get_args

from .._jsonvalue import dumps
from ..errors import ModelRequestError
from ._anthropic_catalog import DEFAULT_MAX_TOKENS, cost_of, model_info, thinking_budget
from ._base import (
    ModelLimits,
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamListener,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingStart,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    import httpx2
    from anthropic import AsyncAnthropic
    from anthropic._streaming import ServerSentEvent

__all__ = [
    "TRANSPORT_VARIABLE",
    "AnthropicProvider",
    "Transport",
    "map_error",
    "message_response",
    "request_body",
    "request_params",
    "to_anthropic_messages",
]

Transport = Literal["httpx", "aiohttp"]
# Which of the SDK's transports a provider given none uses; unset means the SDK's default.
TRANSPORT_VARIABLE = "FLUE_ANTHROPIC_TRANSPORT"

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn; what was said so far stands
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "toolUse",
    "refusal": "error",  # the model declined: nothing usable came back
}

_CONTEXT_OVERFLOW = ("prompt is too long", "exceed context limit", "context window")


class AnthropicProvider:
    """The built-in ``anthropic`` provider.

    ``api_key`` and ``base_url`` default to ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL``,
    read at the first model call, not at construction: a registry (and a dry run with
    ``FLUE_MODEL=fake/echo``) never needs a key. ``http_client`` is passed to the SDK as is;
    without one, ``transport`` (default: ``FLUE_ANTHROPIC_TRANSPORT``, else ``"httpx"``, the
    SDK's default) chooses the SDK's transport.
    """

    name = "anthropic"
    api = "anthropic-messages"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 600.0,
        http_client: Any = None,
        transport: Transport | None = None,
        open_telemetry: Any = None,
    ) -> None:
        self._api_key = api_key
        self._open_telemetry = open_telemetry
        self._base_url = base_url
        self._timeout = timeout
        self._http_client = http_client
        self._transport = transport
        self._sdk: _Sdk | None = None

    def _chosen_transport(self) -> Transport:
        chosen = self._transport or os.environ.get(TRANSPORT_VARIABLE) or "httpx"
        if chosen not in get_args(Transport):
            raise ModelRequestError(
                f"{TRANSPORT_VARIABLE}={chosen!r} is not a transport of the Anthropic SDK: "
                f"use one of {', '.join(get_args(Transport))}.",
                code="bad_transport",
            )
        return chosen  # type: ignore[return-value]

    def _connect(self) -> _Sdk:
        if self._sdk is None:
            api_key = self._api_key or os.environ.get("ANTHROPIC_API_KEY")
            if not api_key:
                raise ModelRequestError(
                    "ANTHROPIC_API_KEY is not set: export it (or pass api_key= to "
                    "AnthropicProvider) to call Anthropic models, or set FLUE_MODEL=fake/echo "
                    "for a dry run without a model.",
                    code="missing_api_key",
                )
            transport = self._chosen_transport()
            import anthropic  # imported on first use: importing flue_actors stays fast
            import httpx2

            # The models messages.create warns about (the SDK's _data package exports them).
            from anthropic._data import DEPRECATED_MODELS, MODELS_TO_WARN_WITH_THINKING_ENABLED

            http_client = self._http_client
            if http_client is None and transport == "aiohttp":
                http_client = anthropic.DefaultAioHttpClient(timeout=self._timeout)
            open_telemetry = self._open_telemetry
            if open_telemetry is None and not _tracing_configured():
                open_telemetry = False
            client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=self._base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
                max_retries=0,
                timeout=self._timeout,
                http_client=http_client,
                open_telemetry=open_telemetry,
            )
            base = client.base_url
            self._sdk = _Sdk(
                client=client,
                # The endpoint under the client's base URL, as the SDK joins a path to it, once:
                # given whole, the SDK parses it once per call instead of twice.
                messages_url=str(
                    base.copy_with(raw_path=base.raw_path.rstrip(b"/") + b"/v1/messages")
                ),
                traced=client.open_telemetry["traces"]["enabled"],
                models_it_warns_about=frozenset(
                    [*DEPRECATED_MODELS, *MODELS_TO_WARN_WITH_THINKING_ENABLED]
                ),
                raw_response=httpx2.Response,
                raw_events=anthropic.AsyncStream.raw_events,
            )
        return self._sdk

    def _client(self) -> AsyncAnthropic:
        return self._connect().client

    def prepare(self) -> None:
        """Import the SDK and make the client now rather than at the first call (seconds of
        import, and the transport's TLS context). Without a key (or with a transport the SDK
        does not have) only the import: the first call reports what is missing."""
        try:
            self._connect()
        except ModelRequestError:
            import anthropic  # noqa: F401

    def sdk_client(self) -> AsyncAnthropic:
        """The SDK client this provider calls through (made at the first use)."""
        return self._client()

    async def aclose(self) -> None:
        """Close the SDK client and its connections (a new one is made if called again)."""
        sdk, self._sdk = self._sdk, None
        if sdk is not None:
            await sdk.client.close()

    def limits(self, model: str) -> ModelLimits:
        """``model``'s context window and output ceiling, from the catalog."""
        info = model_info(model)
        return ModelLimits(context_window=info.context_window, max_output=info.max_output)

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        sdk = self._sdk or self._connect()
        if sdk.traced or request.model in sdk.models_it_warns_about:
            return await _through_messages_create(sdk, request, on_stream)
        # Our body is already the API's JSON: sent as bytes, it skips the SDK's walk of
        # messages.create's typed parameters; headers, auth, timeouts and status errors are
        # still the SDK's (its documented request method for any endpoint).
        body = request_body(request)
        try:
            response: httpx2.Response = await sdk.client.post(
                sdk.messages_url, content=body, cast_to=sdk.raw_response, stream=True
            )
            try:
                return await _read_turn(sdk, response, request.model, on_stream)
            finally:
                await response.aclose()
        except ModelRequestError:
            raise
        except Exception as error:
            raise map_error(error) from error


async def _through_messages_create(
    sdk: _Sdk, request: ModelRequest, on_stream: StreamListener
) -> ModelResponse:
    """The call through the SDK's own method: its spans are named and described per method,
    and it warns about deprecated models."""
    params = request_params(request)
    try:
        stream = await sdk.client.messages.create(**params, stream=True)
        # Leaving the block closes the HTTP response (and ends the SDK's span), also when the
        # task is cancelled mid-stream (CancelledError is not an Exception).
        async with stream:
            return await _read_turn(sdk, stream.response, request.model, on_stream)
    except ModelRequestError:
        raise
    except Exception as error:
        raise map_error(error) from error


@dataclass(frozen=True, slots=True)
class _Sdk:
    """A provider's SDK client and what its calls take from the SDK, resolved once."""

    client: AsyncAnthropic
    messages_url: str
    traced: bool  # its calls make OpenTelemetry spans
    models_it_warns_about: frozenset[str]
    raw_response: type[httpx2.Response]
    raw_events: Callable[[httpx2.Response], AsyncIterator[ServerSentEvent]]


async def _read_turn(
    sdk: _Sdk, response: httpx2.Response, model: str, on_stream: StreamListener
) -> ModelResponse:
    """Our turn from a streamed Messages API response, read through the SDK's SSE decoder as
    plain JSON (no typed event per frame); an in-stream ``error`` event is raised as the SDK
    raises it."""
    turn = _StreamedTurn(model, on_stream)
    async for sse in sdk.raw_events(response):
        kind = sse.event
        if kind is None or kind == "ping" or not sse.data:
            continue  # what the SDK's own event iterator skips
        if kind == "error":
            raise _stream_error(sse.data, response)
        turn.feed(json.loads(sse.data))
    return turn.finish()


def _tracing_configured() -> bool:
    """Whether the SDK's call spans could be recorded or steered: a tracer provider is set (or
    named by ``OTEL_PYTHON_TRACER_PROVIDER``), or an ``ANTHROPIC_OPEN_TELEMETRY*`` variable is."""
    if os.environ.get("OTEL_PYTHON_TRACER_PROVIDER") or any(
        name.startswith("ANTHROPIC_OPEN_TELEMETRY") for name in os.environ
    ):
        return True
    from opentelemetry import trace  # the SDK's own dependency, loaded with it

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _stream_error(data: str, response: Any) -> Exception:
    """An in-stream ``error`` event, as the SDK's own event iterator raises it."""
    import anthropic

    body: Any = data
    try:
        body = json.loads(data)
        message = f"{body}"
    except ValueError:
        message = data or f"Error code: {response.status_code}"
    return anthropic.APIStatusError(message, response=response, body=body)


# --- request ----------------------------------------------------------------------------------


def request_params(request: ModelRequest) -> dict[str, Any]:
    """The Messages API body (minus ``stream``) for ``request``."""
    params = _params_but_tools(request)
    if request.tools:
        params["tools"] = [_tool(spec) for spec in request.tools]
    return params


def request_body(request: ModelRequest) -> bytes:
    """The JSON body of the streamed Messages API request for ``request``:
    :func:`request_params` and ``stream``, tools last, each tool's JSON encoded once per spec
    (a run's tool specs are shared by its turns and by every run, and never mutated: see
    ``_harness.tools.tool_spec``; their schemas are most of a body)."""
    params = _params_but_tools(request)
    params["stream"] = True
    text = dumps(params)
    if request.tools:
        tools = ",".join([_tool_json(spec) for spec in request.tools])
        text = f'{text[:-1]},"tools":[{tools}]}}'
    return text.encode()


def _params_but_tools(request: ModelRequest) -> dict[str, Any]:
    info = model_info(request.model)
    max_tokens = request.max_tokens or min(DEFAULT_MAX_TOKENS, info.max_output)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": to_anthropic_messages(request.messages),
    }
    budget = thinking_budget(request.model, request.thinking_level)
    if budget is not None:
        # The budget is part of max_tokens: add it, within the model's ceiling, so thinking
        # does not eat the answer; the API wants budget < max_tokens and budget >= 1024.
        max_tokens = min(info.max_output, max_tokens + budget)
        budget = max(1024, min(budget, max_tokens - 1024))
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    params["max_tokens"] = max_tokens
    if request.system_prompt:
        params["system"] = request.system_prompt
    return params


# Each tool's JSON, by spec identity (the spec is held, so its id is not reused meanwhile).
# Bounded: tools made per run (MCP servers', framework tools') are encoded again once it fills.
_TOOL_JSON: dict[int, tuple[ToolSpec, str]] = {}
_TOOL_JSON_LIMIT = 4096


def _tool_json(spec: ToolSpec) -> str:
    known = _TOOL_JSON.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    if len(_TOOL_JSON) >= _TOOL_JSON_LIMIT:
        _TOOL_JSON.clear()
    text = dumps(_tool(spec))
    _TOOL_JSON[id(spec)] = (spec, text)
    return text


def _tool(spec: ToolSpec) -> dict[str, Any]:
    schema = dict(spec.parameters)
    schema.setdefault("type", "object")
    return {"name": spec.name, "description": spec.description, "input_schema": schema}


def _image(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": block["mimeType"], "data": block["data"]},
    }


def _user_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for block in content:
        if block.get("type") == "text" and block.get("text"):
            blocks.append({"type": "text", "text": block["text"]})
        elif block.get("type") == "image":
            blocks.append(_image(block))
    return blocks


def _assistant_content(content: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            blocks.append({"type": "text", "text": block["text"]})
        elif kind == "thinking":
            signature = block.get("thinkingSignature")
            if block.get("redacted") and signature:
                blocks.append({"type": "redacted_thinking", "data": signature})
            elif signature:
                blocks.append(
                    {"type": "thinking", "thinking": block["thinking"], "signature": signature}
                )
            elif block.get("thinking"):
                # Thinking from another model has no signature the API would accept: keep it
                # as text, so the model still sees what was thought.
                blocks.append({"type": "text", "text": block["thinking"]})
        elif kind == "toolCall":
            blocks.append(
                {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": block.get("arguments") or {},
                }
            )
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = _user_content(message.get("content") or [])
    result: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": message["toolCallId"],
        "content": content or [{"type": "text", "text": "(no output)"}],
    }
    if message.get("isError"):
        result["is_error"] = True
    return result


def to_anthropic_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """pi-ai messages to Messages API turns. Consecutive tool results become one user turn (the
    API wants every result of a turn's tool calls in the next user message)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            content = _user_content(message.get("content") or [])
            if content:
                out.append({"role": "user", "content": content})
        elif role == "assistant":
            if message.get("stopReason") in ("error", "aborted"):
                continue  # a failed turn said nothing the next request should build on
            content = _assistant_content(message.get("content") or [])
            if content:
                out.append({"role": "assistant", "content": content})
        elif role == "toolResult":
            result = _tool_result(message)
            previous = out[-1] if out else None
            if (
                previous is not None
                and previous["role"] == "user"
                and previous["content"]
                and all(block["type"] == "tool_result" for block in previous["content"])
            ):
                previous["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
    return out


# --- response ---------------------------------------------------------------------------------


class _StreamedTurn:
    """Folds the raw stream events of one response into our content blocks, reporting text and
    thinking to the listener as they arrive."""

    def __init__(self, model: str, on_stream: StreamListener) -> None:
        self._model = model
        self._on_stream = on_stream
        self.content: list[dict[str, Any]] = []
        self._by_index: dict[int, dict[str, Any]] = {}
        self._positions: dict[int, int] = {}  # API block index -> index in self.content
        self._json: dict[int, list[str]] = {}
        self._usage: dict[str, int] = {}
        self._stop_reason: str | None = None
        self._response_id: str | None = None
        self._response_model: str | None = None
        self._stopped = False

    def feed(self, event: dict[str, Any]) -> None:
        """One raw stream event, as the API sent it (its JSON, not the SDK's typed model)."""
        kind = event.get("type")
        if kind == "content_block_delta":
            index = event["index"]
            block = self._by_index.get(index)
            if block is None:
                return
            delta = event["delta"]
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                text = delta["text"]
                block["text"] += text
                self._on_stream(TextDelta(text))
            elif delta_kind == "thinking_delta":
                thinking = delta["thinking"]
                block["thinking"] += thinking
                self._on_stream(ThinkingDelta(thinking, content_index=self._positions[index]))
            elif delta_kind == "signature_delta":
                block["thinkingSignature"] = block.get("thinkingSignature", "") + delta["signature"]
            elif delta_kind == "input_json_delta":
                self._json[index].append(delta["partial_json"])
        elif kind == "content_block_start":
            self._start_block(event["index"], event["content_block"])
        elif kind == "content_block_stop":
            self._stop_block(event["index"])
        elif kind == "message_start":
            message = event["message"]
            self._response_id = message.get("id")
            self._response_model = message.get("model")
            self._add_usage(message.get("usage"))
        elif kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason") or self._stop_reason
            self._add_usage(event.get("usage"))
        elif kind == "message_stop":
            self._stopped = True

    def _start_block(self, index: int, source: dict[str, Any]) -> None:
        block: dict[str, Any]
        kind = source.get("type")
        if kind == "text":
            block = {"type": "text", "text": source.get("text") or ""}
            if block["text"]:
                self._on_stream(TextDelta(block["text"]))
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": source.get("thinking") or ""}
            self._on_stream(ThinkingStart(content_index=len(self.content)))
        elif kind == "redacted_thinking":
            block = {
                "type": "thinking",
                "thinking": "[Reasoning redacted]",
                "thinkingSignature": source["data"],
                "redacted": True,
            }
        elif kind == "tool_use":
            block = {
                "type": "toolCall",
                "id": source["id"],
                "name": source["name"],
                "arguments": {},
            }
            self._json[index] = []
        else:
            return  # server tool blocks and the like: not part of our message shapes
        self._by_index[index] = block
        self._positions[index] = len(self.content)
        self.content.append(block)

    def _stop_block(self, index: int) -> None:
        block = self._by_index.get(index)
        if block is None:
            return
        if block["type"] == "thinking" and not block.get("redacted"):
            position = self._positions[index]
            self._on_stream(ThinkingEnd(block["thinking"], content_index=position))
        elif block["type"] == "toolCall":
            raw = "".join(self._json.pop(index, []))
            try:
                block["arguments"] = json.loads(raw) if raw else {}
            except json.JSONDecodeError as error:
                raise ModelRequestError(
                    f"Anthropic sent unparseable arguments for tool {block['name']!r}: {error}",
                    transient=True,
                    code="bad_tool_arguments",
                ) from error

    def _add_usage(self, usage: dict[str, Any] | None) -> None:
        # message_start carries the input side; message_delta the (cumulative) output side and,
        # on newer API versions, the input side again. Later non-null values win.
        if not usage:
            return
        for field in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = usage.get(field)
            if value is not None:
                self._usage[field] = value

    def finish(self) -> ModelResponse:
        if not self._stopped:
            # The connection ended without message_stop: the answer may be cut short.
            raise ModelRequestError(
                "The Anthropic stream ended before message_stop.",
                transient=True,
                code="stream_cut",
            )
        usage = cost_of(
            self._model,
            Usage(
                input=self._usage.get("input_tokens", 0),
                output=self._usage.get("output_tokens", 0),
                cache_read=self._usage.get("cache_read_input_tokens", 0),
                cache_write=self._usage.get("cache_creation_input_tokens", 0),
            ),
        )
        reason = self._stop_reason or "end_turn"
        stop = _STOP_REASONS.get(reason, "stop")
        return ModelResponse(
            content=self.content,
            usage=usage,
            stop_reason=stop,
            response_id=self._response_id,
            response_model=self._response_model,
            error_message=f"The model stopped with stop_reason {reason!r}."
            if stop == "error"
            else None,
        )


def message_response(
    model: str,
    message: dict[str, Any],
    *,
    batched: bool = False,
    batch_id: str | None = None,
    custom_id: str | None = None,
) -> ModelResponse:
    """A whole (non-streamed) Messages API message as one turn, priced as a batched turn when
    it came from a Message Batch. The same blocks the stream fold makes."""
    content: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            content.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "thinking":
            thought: dict[str, Any] = {"type": "thinking", "thinking": block.get("thinking") or ""}
            if block.get("signature"):
                thought["thinkingSignature"] = block["signature"]
            content.append(thought)
        elif kind == "redacted_thinking":
            content.append(
                {
                    "type": "thinking",
                    "thinking": "[Reasoning redacted]",
                    "thinkingSignature": block["data"],
                    "redacted": True,
                }
            )
        elif kind == "tool_use":
            content.append(
                {
                    "type": "toolCall",
                    "id": block["id"],
                    "name": block["name"],
                    "arguments": block.get("input") or {},
                }
            )
    raw = message.get("usage") or {}
    usage = cost_of(
        model,
        Usage(
            input=raw.get("input_tokens") or 0,
            output=raw.get("output_tokens") or 0,
            cache_read=raw.get("cache_read_input_tokens") or 0,
            cache_write=raw.get("cache_creation_input_tokens") or 0,
        ),
        batched=batched,
    )
    reason = message.get("stop_reason") or "end_turn"
    stop = _STOP_REASONS.get(reason, "stop")
    return ModelResponse(
        content=content,
        usage=usage,
        stop_reason=stop,
        response_id=message.get("id"),
        response_model=message.get("model"),
        error_message=f"The model stopped with stop_reason {reason!r}."
        if stop == "error"
        else None,
        batch_id=batch_id,
        custom_id=custom_id,
    )


# --- errors -----------------------------------------------------------------------------------


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time())
        except (TypeError, ValueError):
            return None


def map_error(error: Exception) -> ModelRequestError:
    """An SDK (or transport) failure as a :class:`ModelRequestError`: transient for 429, 529 /
    overloaded, 5xx and connection trouble; permanent for the rest (bad request, auth, not
    found, context overflow)."""
    import anthropic
    import httpx2

    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        body = error.body if isinstance(error.body, dict) else {}
        raw_detail = body.get("error")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        kind = str(detail.get("type") or "")
        message = str(detail.get("message") or error.message)
        text = f"Anthropic API error {status} ({kind or 'unknown'}): {message}"
        if status == 529 or kind == "overloaded_error":
            return ModelRequestError(text, transient=True, code="overloaded")
        if status == 429 or kind == "rate_limit_error":
            retry_after = _retry_after(error.response.headers if status == 429 else None)
            return ModelRequestError(
                text, transient=True, code="rate_limited", retry_after=retry_after
            )
        if status >= 500 or kind == "api_error":
            return ModelRequestError(text, transient=True, code="server_error")
        if status in (400, 413) and any(sign in message.lower() for sign in _CONTEXT_OVERFLOW):
            return ModelRequestError(text, code="context_overflow")
        return ModelRequestError(text, code=kind or f"http_{status}")
    if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        kind = "timeout" if isinstance(error, anthropic.APITimeoutError) else "connection"
        return ModelRequestError(
            f"Could not reach the Anthropic API ({kind}): {error}", transient=True, code=kind
        )
    return ModelRequestError(f"Anthropic request failed: {type(error).__name__}: {error}")
