"""``FakeModel``: a scripted model provider for deterministic workflow tests."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

from .._jsonvalue import dumps
from ..errors import ModelRequestError
from ..models import (
    ModelLimits,
    ModelRequest,
    ModelResponse,
    StreamListener,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingStart,
    Usage,
)

__all__ = [
    "FakeFailure",
    "FakeModel",
    "FakeModelExhaustedError",
    "FakeToolCall",
    "FakeTurn",
    "Responder",
]


@dataclass(frozen=True)
class FakeToolCall:
    name: str
    arguments: dict[str, Any]
    id: str


@dataclass(frozen=True)
class FakeTurn:
    """One scripted assistant turn. ``text`` streams as one delta per ``chunks`` entry if given.
    ``usage`` None reports 10 input and 5 output tokens, or, for a fake model with a context
    window, the tokens it counted in the request and the reply."""

    text: str = ""
    tool_calls: Sequence[FakeToolCall] = ()
    thinking: str | None = None
    usage: Usage | None = None
    chunks: Sequence[str] | None = None


FailureKind: TypeAlias = Literal["status", "context_overflow", "stream_cut"]


@dataclass(frozen=True)
class FakeFailure:
    """One scripted failed model call, raised as the real provider would raise it: a
    :class:`~flue_actors.errors.ModelRequestError`, transient or not."""

    kind: FailureKind = "status"
    status: int = 500
    retry_after: float | None = None
    after_chunks: int = 0

    def error(self) -> ModelRequestError:
        if self.kind == "context_overflow":
            return overflow_error(210000, 200000)
        if self.kind == "stream_cut":
            return ModelRequestError(
                f"The stream broke off after {self.after_chunks} chunk(s).",
                transient=True,
                code="stream_cut",
            )
        status = self.status
        if status == 429:
            kind, code, transient = "rate_limit_error", "rate_limited", True
        elif status == 529:
            kind, code, transient = "overloaded_error", "overloaded", True
        elif status >= 500:
            kind, code, transient = "api_error", "server_error", True
        else:
            kind, code, transient = "invalid_request_error", f"http_{status}", False
        return ModelRequestError(
            f"Fake API error {status} ({kind})",
            transient=transient,
            code=code,
            retry_after=self.retry_after,
        )


def overflow_error(tokens: int, window: int) -> ModelRequestError:
    """The error the Anthropic provider raises for a request larger than the window."""
    return ModelRequestError(
        "Anthropic API error 400 (invalid_request_error): prompt is too long: "
        f"{tokens} tokens > {window} maximum",
        code="context_overflow",
    )


def count_tokens(request: ModelRequest) -> int:
    """How many tokens a fake model with a context window counts in ``request``: 4 characters
    of its JSON (system prompt, messages, tool specs) per token. It counts more than the
    harness's estimate does, as a real tokenizer may."""
    chars = len(request.system_prompt or "") + len(dumps(list(request.messages)))
    chars += sum(len(spec.name) + len(spec.description) + len(dumps(spec.parameters))
                 for spec in request.tools)  # fmt: skip
    return -(-chars // 4)


Responder: TypeAlias = Callable[[ModelRequest], "str | FakeTurn | Awaitable[str | FakeTurn]"]


class FakeModelExhaustedError(AssertionError):
    """The workflow asked the fake model for more turns than the test scripted."""


class FakeModel:
    """A model provider that answers from a script.

    ``reply(...)`` queues turns answered in order; ``respond_with(fn)`` answers every request
    the script does not cover. ``requests`` records every request, for assertions. A request
    with nothing left to answer it fails loudly: the test is wrong, and looping or inventing a
    reply would hide that.

    With ``context_window`` the model behaves as a real one does near its limit: it reports
    the window (and ``max_output``) to the harness, counts each request's tokens
    (:func:`count_tokens`) and reports them as the turn's usage, and refuses a request larger
    than the window with the provider's context-overflow error (recorded in ``requests``,
    consuming nothing from the script), so automatic compaction can be tested end to end.
    """

    name = "fake"
    api = "fake"

    def __init__(self, *, context_window: int = 0, max_output: int = 0) -> None:
        self.context_window = context_window
        self.max_output = max_output
        self._script: deque[FakeTurn | FakeFailure] = deque()
        self._responder: Responder | None = None
        self.requests: list[ModelRequest] = []
        self.exhausted: FakeModelExhaustedError | None = None
        self._call_ids = 0

    def reply(
        self,
        text: str = "",
        *,
        tool_calls: Sequence[FakeToolCall | tuple[str, dict[str, Any]]] = (),
        thinking: str | None = None,
        usage: Usage | None = None,
        chunks: Sequence[str] | None = None,
    ) -> FakeModel:
        """Queue one assistant turn. Tool calls given as ``(name, arguments)`` get ids
        ``call_1``, ``call_2``, ... in the order they are scripted."""
        calls = []
        for call in tool_calls:
            if isinstance(call, FakeToolCall):
                calls.append(call)
            else:
                self._call_ids += 1
                calls.append(FakeToolCall(call[0], call[1], f"call_{self._call_ids}"))
        turn = FakeTurn(text=text, tool_calls=calls, thinking=thinking, chunks=chunks)
        self._script.append(turn if usage is None else replace(turn, usage=usage))
        return self

    def fail(
        self,
        *,
        status: int = 500,
        retry_after: float | None = None,
        kind: FailureKind = "status",
        after_chunks: int = 0,
    ) -> FakeModel:
        """Queue one failed call, in order with the replies: ``fail(status=429,
        retry_after=1.5)`` (rate limited, transient), ``fail(status=529)`` (overloaded,
        transient), any 5xx (transient), 4xx (permanent), ``fail(kind="context_overflow")``
        (permanent, code ``context_overflow``), ``fail(kind="stream_cut", after_chunks=N)``
        (streams N text deltas ``"chunk1 "``... then breaks off, transient)."""
        self._script.append(FakeFailure(kind, status, retry_after, after_chunks))
        return self

    def respond_with(self, responder: Responder) -> FakeModel:
        """Answer requests the script does not cover with ``responder(request)``, which returns
        the reply text or a :class:`FakeTurn` (sync or async)."""
        self._responder = responder
        return self

    def limits(self, model: str) -> ModelLimits:
        """The window and output limit given at construction (0: unknown), for every model."""
        return ModelLimits(context_window=self.context_window, max_output=self.max_output)

    @property
    def pending(self) -> int:
        """Scripted turns not yet used."""
        return len(self._script)

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        self.requests.append(request)
        counted = count_tokens(request) if self.context_window > 0 else None
        if counted is not None and counted > self.context_window:
            raise overflow_error(counted, self.context_window)
        if self._script:
            scripted = self._script.popleft()
            if isinstance(scripted, FakeFailure):
                for number in range(1, scripted.after_chunks + 1):
                    on_stream(TextDelta(f"chunk{number} "))
                raise scripted.error()
            turn = scripted
        elif self._responder is not None:
            answer = self._responder(request)
            if inspect.isawaitable(answer):
                answer = await answer
            turn = answer if isinstance(answer, FakeTurn) else FakeTurn(text=str(answer))
        else:
            self.exhausted = FakeModelExhaustedError(
                f"FakeModel has no reply for model request #{len(self.requests)}: the script "
                f"held {len(self.requests) - 1} turn(s). Queue more with fake_model.reply(...) "
                "or answer dynamically with fake_model.respond_with(fn)."
            )
            raise self.exhausted
        return _respond(turn, on_stream, counted)


def _respond(turn: FakeTurn, on_stream: StreamListener, counted: int | None) -> ModelResponse:
    content: list[dict[str, Any]] = []
    if turn.thinking is not None:
        on_stream(ThinkingStart(content_index=len(content)))
        on_stream(ThinkingDelta(turn.thinking, content_index=len(content)))
        on_stream(ThinkingEnd(turn.thinking, content_index=len(content)))
        content.append({"type": "thinking", "thinking": turn.thinking})
    if turn.text:
        for chunk in turn.chunks if turn.chunks is not None else [turn.text]:
            on_stream(TextDelta(chunk))
        content.append({"type": "text", "text": turn.text})
    for call in turn.tool_calls:
        content.append(
            {"type": "toolCall", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    usage = turn.usage
    if usage is None:
        usage = (
            Usage(input=10, output=5)
            if counted is None
            else Usage(input=counted, output=-(-len(dumps(content)) // 4))
        )
    return ModelResponse(
        content=content,
        usage=usage,
        stop_reason="toolUse" if turn.tool_calls else "stop",
        response_model="fake",
    )
