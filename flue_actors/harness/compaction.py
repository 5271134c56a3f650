"""``session.compact()``: fold the older part of a conversation into one summary message.

The latest exchange (from the last user message on) is kept verbatim, so the model still sees
what it is working on; everything before it becomes a summary written by one model call
(a turn with purpose ``compaction``). With nothing before the latest exchange there is nothing
to fold, and no model is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import OperationFailedError
from ..events import error_payload
from ..jsonvalue import dumps
from ..models import ModelRequest, Usage
from .agent_loop import recorded_turn
from .replay import response_from_turn
from .turns import response_info, turn_error

if TYPE_CHECKING:
    from .session import Session

__all__ = ["SUMMARY_PREFIX", "compact", "estimate_tokens"]

SYSTEM_PROMPT = (
    "You summarize conversations between a user and an AI agent so the agent can continue "
    "the work from the summary alone. Keep goals, decisions, facts, file names, results and "
    "open questions; drop pleasantries and repetition."
)
SUMMARY_PREFIX = "Summary of the earlier conversation:\n\n"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    # A rough 4 characters per token, as Flue estimates before it has a model's count.
    return sum(len(dumps(message)) for message in messages) // 4


def _render(message: dict[str, Any]) -> str:
    lines = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            lines.append(block["text"])
        elif kind == "toolCall":
            lines.append(f"[called {block['name']} with {dumps(block.get('arguments') or {})}]")
        elif kind == "image":
            lines.append("[image]")
    return f"{message['role']}: " + "\n".join(lines)


async def compact(session: Session, correlation: dict[str, Any]) -> Usage:
    """Compact ``session``'s conversation in place; returns the model usage (zero if none)."""

    messages = session._messages
    users = [index for index, message in enumerate(messages) if message["role"] == "user"]
    cut = users[-1] if users else 0
    if cut < 2:  # nothing older than the latest exchange but perhaps a previous summary
        return Usage()
    emit, clock = session._sink.emit, session._clock
    emit(
        "compaction_start",
        {"reason": "manual", "estimatedTokens": estimate_tokens(messages), **correlation},
    )
    started = clock.now_ms()
    older, recent = messages[:cut], messages[cut:]
    resolved = session._resolve(None)
    transcript = "\n\n".join(_render(message) for message in older)
    request = ModelRequest(
        model=resolved.model_id,
        system_prompt=SYSTEM_PROMPT,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Summarize this conversation:\n\n<conversation>\n"
                        f"{transcript}\n</conversation>",
                    }
                ],
                "timestamp": clock.now_ms(),
            }
        ],
    )
    turn_id = "turn_" + session._ids.ulid()
    turn = {**correlation, "turnId": turn_id}
    emit("turn_start", {"purpose": "compaction", **turn})
    info = {
        "purpose": "compaction",
        "request": {
            "providerId": resolved.provider_name,
            "providerName": resolved.provider_name,
            "requestedModel": resolved.model_id,
            "api": resolved.provider.api,
        },
    }
    recorded = recorded_turn(session, turn, "compaction")
    try:
        if recorded is not None:
            response = response_from_turn(recorded)
        else:
            response = await resolved.provider.complete(request, lambda _event: None)
        if response.stop_reason == "error":
            raise RuntimeError(response.error_message or "model error")
    except Exception as error:
        duration = clock.now_ms() - started
        emit("turn", {**info, "durationMs": duration, "isError": True,
                      "response": {"error": turn_error(error)}, **turn})  # fmt: skip
        emit(
            "compaction",
            {
                "messagesBefore": len(messages),
                "messagesAfter": len(messages),
                "durationMs": duration,
                "isError": True,
                "error": error_payload(error),
                **correlation,
            },
        )
        raise OperationFailedError(kind="compact", reason=str(error)) from error
    output = {"role": "assistant", "content": response.content, "stopReason": response.stop_reason}
    emit("turn", {**info, "durationMs": clock.now_ms() - started, "isError": False,
                  "response": response_info(response, output), **turn})  # fmt: skip
    summary = {
        "role": "user",
        "content": [{"type": "text", "text": SUMMARY_PREFIX + response.text}],
        "timestamp": clock.now_ms(),
    }
    session._messages[:] = [summary, *recent]
    emit(
        "compaction",
        {
            "messagesBefore": len(older) + len(recent),
            "messagesAfter": len(session._messages),
            "durationMs": clock.now_ms() - started,
            "isError": False,
            "usage": response.usage.to_wire(),
            **correlation,
        },
    )
    return response.usage
