"""Compaction: fold the older part of a conversation into one summary message.

Two ways to choose what is folded:

- ``session.compact()`` keeps the latest exchange (from the last user message on) verbatim and
  folds everything before it.
- Automatic compaction (:func:`compact_if_needed` before a model turn, when the conversation
  nears the model's window, and :func:`recover_from_overflow` when the provider refused a
  request as too long) keeps about ``keep_recent_tokens`` of the latest messages. When those
  fall inside the latest request's own work (a long agent loop), the request message itself is
  kept too and the steps between it and the kept ones are summarized on their own (a turn with
  purpose ``compaction_prefix``).

Either way a cut never separates a tool call from its result (the kept part never starts with
a tool result), the last user message is never folded, and a previous summary is folded into
the new one. Each summary is one model call (a turn with purpose ``compaction``), retried on
transient errors as agent turns are. Events: ``compaction_start {reason, estimatedTokens}``,
then ``compaction {messagesBefore, messagesAfter, durationMs, isError, error?, usage?}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from .._events import error_payload
from .._jsonvalue import dumps
from .._messages import Message, UserMessage
from ..errors import AbortError, ModelRequestError, OperationFailedError
from ..models import ModelRequest, ModelResponse, ResolvedModel, Usage, model_limits
from .batch_records import batched_turn, pending_batches
from .context_budget import CompactionSettings, context_tokens, estimate_tokens, resolve_settings
from .payloads import Correlation, LogPayload, ModelAsked, TurnCorrelation
from .replay import recorded_turn, replay_of, response_from_turn, write_ahead
from .turns import model_retry_log, response_info, turn_error

if TYPE_CHECKING:
    from .session_state import SessionState

__all__ = [
    "SUMMARY_PREFIX",
    "CompactionPlan",
    "Reason",
    "Summary",
    "apply_plan",
    "compact",
    "compact_if_needed",
    "plan_latest_exchange",
    "plan_recent",
    "recover_from_overflow",
]

Reason = Literal["threshold", "overflow", "manual"]

SYSTEM_PROMPT = (
    "You summarize conversations between a user and an AI agent so the agent can continue "
    "the work from the summary alone. Keep goals, decisions, facts, file names, results and "
    "open questions; drop pleasantries and repetition. Do not answer or continue the "
    "conversation: write only the summary."
)
SUMMARY_PREFIX = "Summary of the earlier conversation:\n\n"
PREFIX_HEADING = (
    "Steps already taken on the latest request (the request follows, then its most recent "
    "steps in full):\n\n"
)
# Marks the summary message, so a later compaction folds it into the next summary.
SUMMARY_KEY: Final = "compactionSummary"
# A tool's output is cut to this much in the transcript the summarizer reads.
_TOOL_RESULT_CHARS = 2000
# Output asked for a summary: a share of the reserve, within these bounds.
_SUMMARY_MIN_TOKENS, _SUMMARY_MAX_TOKENS = 1024, 16000


@dataclass(frozen=True)
class Summary:
    """A summary message's two parts: the conversation before the latest request, and the
    steps already taken on that request (when its work was split)."""

    history: str | None = None
    steps: str | None = None

    def text(self) -> str:
        parts = []
        if self.history:
            parts.append(SUMMARY_PREFIX + self.history)
        if self.steps:
            parts.append(PREFIX_HEADING + self.steps)
        return "\n\n".join(parts)


# The messages a plan is made of: a session's conversation, or any message-shaped mappings.
M = TypeVar("M", bound=Mapping[str, Any])


@dataclass(frozen=True)
class CompactionPlan(Generic[M]):
    """What a compaction folds and keeps. ``history`` becomes the summary (with ``previous``,
    the summary it replaces); in a split request, ``turn_prefix`` (the earliest steps of the
    work on ``request``) is summarized on its own. The conversation afterwards is the summary,
    ``request`` (when split) and ``kept``."""

    previous: Summary | None
    history: list[M]
    kept: list[M]
    request: M | None = None
    turn_prefix: list[M] = field(default_factory=list)


def _start(messages: Sequence[Mapping[str, Any]]) -> tuple[int, Summary | None]:
    # Where the messages a compaction may fold begin: after a previous summary, if any.
    parts = messages[0].get(SUMMARY_KEY) if messages else None
    if isinstance(parts, dict):
        return 1, Summary(history=parts.get("history"), steps=parts.get("steps"))
    return 0, None


def _last_user(messages: Sequence[Mapping[str, Any]], start: int) -> int | None:
    for index in range(len(messages) - 1, start - 1, -1):
        if messages[index].get("role") == "user":
            return index
    return None


def plan_latest_exchange(messages: Sequence[M]) -> CompactionPlan[M] | None:
    """Fold everything before the last user message (``session.compact()``); None when
    nothing is older."""
    start, previous = _start(messages)
    last = _last_user(messages, start)
    if last is None or last <= start:
        return None
    return CompactionPlan(previous, list(messages[start:last]), list(messages[last:]))


def plan_recent(messages: Sequence[M], keep_recent_tokens: int) -> CompactionPlan[M] | None:
    """Keep at least ``keep_recent_tokens`` (estimated) of the latest messages, cutting just
    before a user or assistant message; None when there is nothing to fold."""
    start, previous = _start(messages)
    # The earliest message the kept part must hold for it to reach keep_recent_tokens.
    boundary, held = None, 0
    for index in range(len(messages) - 1, start - 1, -1):
        held += estimate_tokens(messages[index : index + 1])
        if held >= keep_recent_tokens:
            boundary = index
            break
    if boundary is None:
        return None  # all of it is recent
    # A cut before a tool result would part it from its call: cut before a user or assistant
    # message, the first at or after the boundary, else (keeping more) the last before it.
    cuts = [i for i in range(start + 1, len(messages)) if messages[i].get("role") != "toolResult"]
    later = [i for i in cuts if i >= boundary]
    if later:
        cut = later[0]
    elif cuts:
        cut = cuts[-1]
    else:
        return None
    last = _last_user(messages, start)
    if last is not None and cut > last + 1:
        # The cut falls inside the latest request's work: keep the request, fold its first steps.
        return CompactionPlan(
            previous,
            list(messages[start:last]),
            list(messages[cut:]),
            request=messages[last],
            turn_prefix=list(messages[last + 1 : cut]),
        )
    if last is not None and cut == last + 1:
        cut = last  # nothing between the request and the cut: keep both together
    if cut <= start:
        return None
    return CompactionPlan(previous, list(messages[start:cut]), list(messages[cut:]))


def apply_plan(plan: CompactionPlan[M], summary: Summary, timestamp: int) -> list[UserMessage | M]:
    """The conversation after ``plan``, given the summary written for it."""
    message: UserMessage = {
        "role": "user",
        "content": [{"type": "text", "text": summary.text()}],
        "timestamp": timestamp,
        SUMMARY_KEY: {"history": summary.history, "steps": summary.steps},
    }
    request = [plan.request] if plan.request is not None else []
    return [message, *request, *plan.kept]


# --- the summarizing calls ----------------------------------------------------------------------


def _render(message: Mapping[str, Any]) -> str:
    lines = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text = block["text"]
            if message.get("role") == "toolResult" and len(text) > _TOOL_RESULT_CHARS:
                cut = len(text) - _TOOL_RESULT_CHARS
                text = f"{text[:_TOOL_RESULT_CHARS]}\n[... {cut} more characters]"
            lines.append(text)
        elif kind == "toolCall":
            lines.append(f"[called {block['name']} with {dumps(block.get('arguments') or {})}]")
        elif kind == "image":
            lines.append("[image]")
    return f"{message['role']}: " + "\n".join(lines)


def _transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    return "\n\n".join(_render(message) for message in messages)


def _history_prompt(plan: CompactionPlan[Message]) -> str:
    text = ""
    if plan.previous is not None:
        text = (
            "This conversation continues an earlier one, summarized here:\n\n"
            f"<previous-summary>\n{plan.previous.text()}\n</previous-summary>\n\n"
            "Write one summary covering both.\n\n"
        )
    return text + (
        f"Summarize this conversation:\n\n<conversation>\n{_transcript(plan.history)}\n"
        "</conversation>"
    )


def _prefix_prompt(plan: CompactionPlan[Message], earlier_steps: str | None) -> str:
    request = _render(plan.request) if plan.request is not None else ""
    earlier = ""
    if earlier_steps:
        earlier = (
            "Steps before these were summarized already; include them in your summary:\n\n"
            f"<earlier-steps>\n{earlier_steps}\n</earlier-steps>\n\n"
        )
    return (
        "An agent is working on the request below. Its most recent steps stay in full; "
        "summarize the earlier steps shown here (what was done, found and decided) so the "
        f"work can continue.\n\n<request>\n{request}\n</request>\n\n{earlier}"
        f"<steps>\n{_transcript(plan.turn_prefix)}\n</steps>"
    )


def _summary_tokens(reserve_tokens: int | None, share: float) -> int | None:
    if reserve_tokens is None:
        return None
    return min(max(int(reserve_tokens * share), _SUMMARY_MIN_TOKENS), _SUMMARY_MAX_TOKENS)


async def _summarize(
    session: SessionState,
    correlation: Correlation,
    purpose: str,
    resolved: ResolvedModel,
    prompt: str,
    max_tokens: int | None,
) -> ModelResponse:
    """One summary, as turns of ``purpose``: transient errors are retried with the harness's
    retry policy, each attempt recorded as a turn and each retry announced by a warn log."""
    emit, clock, retry = session.services.emit, session.services.clock, session.retry
    request = ModelRequest(
        model=resolved.model_id,
        system_prompt=SYSTEM_PROMPT,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": prompt}],
                "timestamp": clock.now_ms(),
            }
        ],
        max_tokens=max_tokens,
    )
    info: ModelAsked = {
        "purpose": purpose,
        "request": {
            "providerId": resolved.provider_name,
            "providerName": resolved.provider_name,
            "requestedModel": resolved.model_id,
            "api": resolved.provider.api,
        },
    }
    attempt = 0
    while True:
        turn: TurnCorrelation = {**correlation, "turnId": "turn_" + session.services.ids.ulid()}
        emit("turn_start", {"purpose": purpose, **turn})
        started = clock.now_ms()
        replay, batches = pending_batches(session, turn)
        recorded = recorded_turn(session.services.sink, turn, purpose)
        try:
            if recorded is not None:
                response = response_from_turn(recorded)
            else:
                await write_ahead(session.services.sink)
                with batched_turn(session, turn, replay, batches, resolved.provider):
                    response = await resolved.provider.complete(request, lambda _event: None)
            if response.stop_reason == "error":
                raise ModelRequestError(response.error_message or "model error")
            if not response.text.strip():
                # An empty summary would silently drop what it replaces.
                raise ModelRequestError("The model wrote an empty summary.")
        except asyncio.CancelledError:
            emit("turn", {**info, "durationMs": clock.now_ms() - started, "isError": True,
                          "response": {"finishReason": "aborted"}, **turn})  # fmt: skip
            raise
        except Exception as error:
            emit("turn", {**info, "durationMs": clock.now_ms() - started, "isError": True,
                          "response": {"error": turn_error(error)}, **turn})  # fmt: skip
            if (
                not isinstance(error, ModelRequestError)
                or not error.transient
                or attempt >= retry.max_retries
            ):
                raise
            attempt += 1
            delay_ms = retry.delay_ms(attempt, error)
            emit("log", model_retry_log(error, attempt, delay_ms, correlation))
            if (
                replay_of(session.services.sink, correlation) is None
            ):  # a replayed failure was waited once
                await retry.sleep(delay_ms / 1000)
            continue
        output = {"role": "assistant", "content": response.content,
                  "stopReason": response.stop_reason}  # fmt: skip
        emit("turn", {**info, "durationMs": clock.now_ms() - started, "isError": False,
                      "response": response_info(response, output), **turn})  # fmt: skip
        return response


async def _run(
    session: SessionState,
    correlation: Correlation,
    reason: Reason,
    plan: CompactionPlan[Message],
    summarizer: ResolvedModel,
    reserve_tokens: int | None,
) -> Usage:
    """Carry out ``plan``: ``compaction_start``, the summary turn(s), the conversation
    rewritten, ``compaction``. A failure or abort leaves the conversation as it was, is
    recorded in the ``compaction`` event and is raised."""
    emit, clock = session.services.emit, session.services.clock
    conversation = session.conversation
    messages = conversation.messages
    before = len(messages)
    estimated = context_tokens(messages, conversation.counted_from)
    emit("compaction_start", {"reason": reason, "estimatedTokens": estimated, **correlation})
    started = clock.now_ms()
    usage = Usage()

    def failed(error: BaseException) -> None:
        emit("compaction", {"messagesBefore": before, "messagesAfter": len(messages),
                            "durationMs": clock.now_ms() - started, "isError": True,
                            "error": error_payload(error), **correlation})  # fmt: skip

    previous = plan.previous
    try:
        # With nothing new before the request, the previous summary's account of it stands.
        history_summary = previous.history if previous is not None else None
        if plan.history:
            response = await _summarize(session, correlation, "compaction", summarizer,
                                        _history_prompt(plan),
                                        _summary_tokens(reserve_tokens, 0.8))  # fmt: skip
            usage += response.usage
            history_summary = response.text
        prefix_summary = None
        if plan.turn_prefix:
            # Steps summarized before belong to this request only if no history came since.
            earlier = previous.steps if previous is not None and not plan.history else None
            response = await _summarize(session, correlation, "compaction_prefix", summarizer,
                                        _prefix_prompt(plan, earlier),
                                        _summary_tokens(reserve_tokens, 0.5))  # fmt: skip
            usage += response.usage
            prefix_summary = response.text
    except asyncio.CancelledError:
        failed(AbortError("The compaction was aborted."))
        raise
    except Exception as error:
        failed(error)
        raise
    summary = Summary(history=history_summary, steps=prefix_summary)
    # The usage recorded on kept responses describes the conversation before this compaction.
    conversation.rewrite(apply_plan(plan, summary, clock.now_ms()))
    emit(
        "compaction",
        {
            "messagesBefore": before,
            "messagesAfter": len(messages),
            "durationMs": clock.now_ms() - started,
            "isError": False,
            "usage": usage.to_wire(),
            **correlation,
        },
    )
    return usage


def _log(session: SessionState, correlation: Correlation, level: Literal["info", "error"],
         message: str,
         attributes: dict[str, Any] | None = None) -> None:  # fmt: skip
    text = "[flue:compaction] " + message
    event: LogPayload = (
        {"level": level, "message": text, "attributes": attributes, **correlation}
        if attributes
        else {"level": level, "message": text, **correlation}
    )
    session.services.emit("log", event)


# --- the three ways in ----------------------------------------------------------------------------


def _settings(session: SessionState, resolved: ResolvedModel) -> CompactionSettings | None:
    limits = model_limits(resolved.provider, resolved.model_id)
    return resolve_settings(session.scope.compaction, limits)


def _summarizer(session: SessionState, settings: CompactionSettings | None) -> ResolvedModel:
    # A summary may be written by a cheaper (or stronger) model than the agent's.
    model = settings.model if settings is not None else None
    return session.harness.resolve_model(model) if model else session.resolve(None)


async def compact(session: SessionState, correlation: Correlation) -> Usage:
    """``session.compact()``: fold everything before the latest exchange; returns the model
    usage (zero when nothing was older, and no model was called). A failure is raised as
    :class:`OperationFailedError`. Works whatever the agent's ``compaction`` setting."""
    plan = plan_latest_exchange(session.conversation.messages)
    if plan is None:
        return Usage()
    resolved = session.resolve(None)
    settings = resolve_settings(session.scope.compaction or None,
                                model_limits(resolved.provider, resolved.model_id))  # fmt: skip
    try:
        return await _run(session, correlation, "manual", plan,
                          _summarizer(session, settings), None)  # fmt: skip
    except Exception as error:
        raise OperationFailedError(kind="compact", reason=str(error)) from error


async def _automatic(
    session: SessionState,
    correlation: Correlation,
    reason: Reason,
    settings: CompactionSettings,
    why: str,
) -> tuple[bool, Usage]:
    # Automatic compaction is best effort: a failure is logged and the turn goes ahead.
    plan = plan_recent(session.conversation.messages, settings.keep_recent_tokens)
    if plan is None:
        nothing = f"{why}, but there is nothing to compact: all of the conversation is recent."
        _log(session, correlation, "info", nothing)
        return False, Usage()
    _log(session, correlation, "info", f"{why}: compacting.")
    try:
        usage = await _run(session, correlation, reason, plan,
                           _summarizer(session, settings), settings.reserve_tokens)  # fmt: skip
    except Exception as error:
        _log(session, correlation, "error", f"Compaction failed: {error}",
             {"error": error_payload(error)})  # fmt: skip
        return False, Usage()
    return True, usage


async def compact_if_needed(
    session: SessionState, correlation: Correlation, resolved: ResolvedModel
) -> Usage:
    """Before a model turn with ``resolved``: compact (reason ``threshold``) when the
    conversation is past the model's window less the reserve. Returns the summary usage."""
    settings = _settings(session, resolved)
    if settings is None or settings.context_window <= 0:
        return Usage()  # off, or no window to near: only an overflow can tell
    tokens = context_tokens(session.conversation.messages, session.conversation.counted_from)
    if not settings.exceeded(tokens):
        return Usage()
    why = (
        f"Threshold reached: about {tokens} tokens in a window of {settings.context_window} "
        f"with {settings.reserve_tokens} reserved"
    )
    return (await _automatic(session, correlation, "threshold", settings, why))[1]


async def recover_from_overflow(
    session: SessionState, correlation: Correlation, resolved: ResolvedModel
) -> tuple[bool, Usage]:
    """After the provider refused a turn's request as too long: compact (reason
    ``overflow``). Returns whether the conversation was compacted, so the turn may be retried,
    and the summary usage."""
    settings = _settings(session, resolved)
    if settings is None:
        return False, Usage()
    why = "The model refused the request as too long"
    return await _automatic(session, correlation, "overflow", settings, why)
