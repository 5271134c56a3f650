"""The Anthropic Messages API's answers, built once for both emulations of it: the in-process
``anthropic_api`` fixture (respx) and the out-of-process server (``messages_server``).

A :class:`MessagesScript` holds the queued answers (replies, failures, stalls) and turns the
next one into an :class:`Answer`: a JSON body with its status and headers, or the bytes of a
``text/event-stream`` in the order the API sends them. Transports only copy those out.
Pure data and ``json``: importing this module costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ERROR_TYPES",
    "STREAM_HEADERS",
    "Answer",
    "FailureKind",
    "JsonAnswer",
    "MessagesScript",
    "ScriptedFailure",
    "ScriptedReply",
    "Stall",
    "StreamAnswer",
    "error_answer",
    "last_user_text",
    "requested_delay_ms",
    "sse",
    "summary_reply",
]

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

FailureKind = Literal["status", "context_overflow", "stream_cut"]

_DELAY = re.compile(r"\[delay=(\d+)\]")
_SUMMARY_PREFIX = "SUMMARY: "
_SUMMARY_CHARS = 20


@dataclass(frozen=True)
class ScriptedReply:
    text: str
    tool_calls: Sequence[tuple[str, dict[str, Any], str]] = ()
    thinking: str | None = None
    chunks: Sequence[str] | None = None
    usage: Mapping[str, int] = field(
        default_factory=lambda: {"input_tokens": 10, "output_tokens": 5}
    )
    stop_reason: str | None = None
    model: str | None = None

    @property
    def resolved_stop_reason(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls else "end_turn")


@dataclass(frozen=True)
class ScriptedFailure:
    kind: FailureKind
    status: int = 500
    retry_after: float | None = None
    after_chunks: int = 0
    message: str | None = None


@dataclass
class Stall:
    """A stream that sends ``message_start`` and then nothing until the client goes away.
    ``started`` is set (in-process emulation only) once it has begun."""

    started: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class JsonAnswer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class StreamAnswer:
    """``events`` are sent in order; with ``stall`` the stream then stays open."""

    events: Sequence[bytes]
    stall: Stall | None = None


Answer = JsonAnswer | StreamAnswer

STREAM_HEADERS: Mapping[str, str] = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "request-id": "req_1",
}


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def error_answer(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JsonAnswer:
    payload = {"type": "error", "error": {"type": kind, "message": message}}
    return JsonAnswer(status, payload, {"request-id": "req_1", **(headers or {})})


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user message (its last text block), or ``""``."""
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                block.get("text", "")
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            ]
            if texts and isinstance(texts[-1], str):
                return texts[-1]
        return ""
    return ""


def summary_reply(body: Mapping[str, Any]) -> ScriptedReply:
    """The unscripted answer: ``"SUMMARY: "`` and the first 20 characters of the last user
    message, in two text deltas, with usage derived from the request's size."""
    text = _SUMMARY_PREFIX + last_user_text(body)[:_SUMMARY_CHARS]
    half = len(text) // 2
    usage = {
        "input_tokens": 10 + len(json.dumps(body.get("messages") or [])) // 4,
        "output_tokens": 3 + len(text) // 4,
    }
    return ScriptedReply(text, chunks=[text[:half], text[half:]], usage=usage)


def requested_delay_ms(body: Mapping[str, Any]) -> int | None:
    """``NNN`` from a ``[delay=NNN]`` in the last user message: answer it that late."""
    match = _DELAY.search(last_user_text(body))
    return int(match.group(1)) if match else None


class MessagesScript:
    """Answers queued in order: ``reply``, ``fail`` and ``stall`` append; ``answer(body)``
    takes the next one (``None`` when the script is empty) and builds the response.

    Message ids (``msg_N``) and tool-use ids (``toolu_N``) share one counter, so a script's
    ids are the same on every run.
    """

    def __init__(self) -> None:
        self._queue: deque[ScriptedReply | ScriptedFailure | Stall] = deque()
        self._ids = 0

    def __len__(self) -> int:
        return len(self._queue)

    def clear(self) -> int:
        """Drop every queued answer and count ids from 1 again; how many answers there were."""
        left = len(self._queue)
        self._queue.clear()
        self._ids = 0
        return left

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"

    def reply(
        self,
        text: str = "",
        *,
        tool_calls: Sequence[Sequence[Any]] = (),
        thinking: str | None = None,
        chunks: Sequence[str] | None = None,
        usage: Mapping[str, int] | None = None,
        stop_reason: str | None = None,
        model: str | None = None,
    ) -> ScriptedReply:
        """Queue one assistant message; see ``AnthropicApi.reply``."""
        calls: list[tuple[str, dict[str, Any], str]] = []
        for call in tool_calls:
            if len(call) == 3:
                calls.append((str(call[0]), dict(call[1]), str(call[2])))
            elif len(call) == 2:
                calls.append((str(call[0]), dict(call[1]), self._next_id("toolu")))
            else:
                raise ValueError(f"a tool call is (name, input) or (name, input, id), not {call!r}")
        reply = ScriptedReply(
            text,
            calls,
            thinking,
            list(chunks) if chunks is not None else None,
            dict(usage) if usage is not None else {"input_tokens": 10, "output_tokens": 5},
            stop_reason,
            model,
        )
        self._queue.append(reply)
        return reply

    def fail(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        kind: FailureKind = "status",
        after_chunks: int = 0,
        message: str | None = None,
    ) -> ScriptedFailure:
        """Queue one failure; see ``AnthropicApi.fail``."""
        if kind not in ("status", "context_overflow", "stream_cut"):
            raise ValueError(f"unknown failure kind {kind!r}")
        failure = ScriptedFailure(kind, status, retry_after, after_chunks, message)
        self._queue.append(failure)
        return failure

    def stall(self) -> Stall:
        stall = Stall()
        self._queue.append(stall)
        return stall

    def answer(self, body: Mapping[str, Any]) -> Answer | None:
        """The next scripted answer to ``body``, or ``None`` if nothing is queued."""
        if not self._queue:
            return None
        return self.build(self._queue.popleft(), body)

    def build(
        self, item: ScriptedReply | ScriptedFailure | Stall, body: Mapping[str, Any]
    ) -> Answer:
        """The response ``item`` makes to ``body`` (streamed if the request asked for it)."""
        model = str(body.get("model", "claude"))
        if isinstance(item, Stall):
            return StreamAnswer([self._start(model, {"input_tokens": 10})], stall=item)
        if isinstance(item, ScriptedFailure):
            return self._failure(model, item)
        if body.get("stream"):
            return StreamAnswer(self._events(item.model or model, item))
        return JsonAnswer(200, self._message(item.model or model, item), {"request-id": "req_1"})

    # --- building ------------------------------------------------------------------------------

    def _failure(self, model: str, failure: ScriptedFailure) -> Answer:
        if failure.kind == "context_overflow":
            return error_answer(
                400,
                "invalid_request_error",
                failure.message or "prompt is too long: 210000 tokens > 200000 maximum",
            )
        if failure.kind == "status":
            kind = ERROR_TYPES.get(failure.status, "api_error")
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = f"{failure.retry_after:g}"
            return error_answer(failure.status, kind, failure.message or kind, headers)
        # A 200 stream that the API cuts with an error event, as it does when shedding load.
        events = [self._start(model, {"input_tokens": 10}), _block_start(0, _TEXT_BLOCK)]
        for number in range(1, failure.after_chunks + 1):
            events.append(_delta(0, {"type": "text_delta", "text": f"chunk{number} "}))
        events.append(
            sse(
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        )
        return StreamAnswer(events)

    def _start(self, model: str, usage: Mapping[str, int]) -> bytes:
        message: dict[str, Any] = {
            "id": self._next_id("msg"),
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
        return sse("message_start", {"type": "message_start", "message": message})

    def _events(self, model: str, reply: ScriptedReply) -> list[bytes]:
        events = [self._start(model, reply.usage), sse("ping", {"type": "ping"})]
        index = 0
        if reply.thinking is not None:
            events.append(
                _block_start(index, {"type": "thinking", "thinking": "", "signature": ""})
            )
            events.append(_delta(index, {"type": "thinking_delta", "thinking": reply.thinking}))
            events.append(_delta(index, {"type": "signature_delta", "signature": f"sig-{index}"}))
            events.append(_block_stop(index))
            index += 1
        if reply.text:
            events.append(_block_start(index, _TEXT_BLOCK))
            for chunk in reply.chunks if reply.chunks is not None else [reply.text]:
                events.append(_delta(index, {"type": "text_delta", "text": chunk}))
            events.append(_block_stop(index))
            index += 1
        for name, arguments, call_id in reply.tool_calls:
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            events.append(_block_start(index, block))
            raw = json.dumps(arguments)
            middle = len(raw) // 2  # two partial deltas, as the API splits input JSON
            for part in (raw[:middle], raw[middle:]):
                events.append(_delta(index, {"type": "input_json_delta", "partial_json": part}))
            events.append(_block_stop(index))
            index += 1
        events.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.resolved_stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": reply.usage.get("output_tokens", 0)},
                },
            )
        )
        events.append(sse("message_stop", {"type": "message_stop"}))
        return events

    def _message(self, model: str, reply: ScriptedReply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.thinking is not None:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig-0"})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for name, arguments, call_id in reply.tool_calls:
            content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
        return {
            "id": self._next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reply.resolved_stop_reason,
            "stop_sequence": None,
            "usage": {
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
                **reply.usage,
            },
        }


_TEXT_BLOCK: Mapping[str, Any] = {"type": "text", "text": ""}


def _block_start(index: int, block: Mapping[str, Any]) -> bytes:
    return sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": dict(block)},
    )


def _delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _block_stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})
