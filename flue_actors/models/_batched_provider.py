"""``anthropic/<model>`` through the Message Batches API: the provider a registry with
``model_batches`` puts in place of the plain Anthropic provider.

Each turn's Messages API body (the one the plain provider would send) goes to a
:class:`~flue_actors.models._message_batches.TurnBatcher`; its result comes back as a whole
message, priced at batch prices, and is reported to the stream listener block by block, so a
batched turn's events have the shape of a streamed one. A request that expired, was canceled or
failed transiently inside its batch is sent again (``ModelBatches.retries``), in a later batch
or through the Messages API (``fallback="messages"``); a permanent error (a bad request) fails
the turn at once, as it would on the Messages API.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import ModelRequestError
from ._anthropic import AnthropicProvider, message_response, request_params
from ._base import (
    ModelRequest,
    ModelResponse,
    StreamListener,
    TextDelta,
    ThinkingDelta,
    ThinkingEnd,
    ThinkingStart,
)
from ._message_batches import (
    BatchedResult,
    MessageBatchCollector,
    ModelBatches,
    TurnBatcher,
    current_turn,
    turn_custom_id,
)

__all__ = ["MessageBatchesProvider", "batch_error"]

logger = logging.getLogger("flue_actors.model_batches")

# The codes the plain provider gives the same failures (``map_error``).
_TRANSIENT_KINDS = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limited",
    "api_error": "server_error",
    "timeout_error": "timeout",
}
_CONTEXT_OVERFLOW = ("prompt is too long", "exceed context limit", "context window")


class MessageBatchesProvider:
    """The ``anthropic`` provider, batched. ``messages`` is the plain provider: its SDK client
    submits the batches (unless ``batcher`` is given) and it answers the fallback."""

    name = "anthropic"
    api = "anthropic-messages"
    # It reads each turn's run, id and batch records (``current_turn``): the harness sets them.
    batches_turns = True

    def __init__(
        self,
        messages: AnthropicProvider,
        settings: ModelBatches,
        *,
        batcher: TurnBatcher | None = None,
    ) -> None:
        self.messages = messages
        self.settings = settings
        self.batcher: TurnBatcher = batcher or MessageBatchCollector(messages.sdk_client, settings)
        # The causes a fallback to the Messages API was logged for (once each, not per turn).
        self._fell_back: set[str] = set()

    def prepare(self) -> None:
        """The Messages API provider's (whose client submits the batches)."""
        self.messages.prepare()

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        params = request_params(request)
        turn = current_turn.get()
        recorded = turn.recorded if turn is not None else ()
        failure: ModelRequestError | None = None
        # Attempts the log already records failed, except maybe the last: re-attach to it.
        for attempt in range(max(len(recorded) - 1, 0), self.settings.retries + 1):
            if attempt > 0 and self.settings.fallback == "messages":
                self._log_fallback(failure)
                return await self.messages.complete(request, on_stream)
            if attempt < len(recorded):
                batch_id, custom_id = recorded[attempt]
            else:
                custom_id = (
                    turn_custom_id(turn.run_id, turn.turn_id, attempt)
                    if turn is not None
                    else f"turn-{os.urandom(12).hex()}"
                )
                since = turn.since if turn is not None and attempt == len(recorded) else None
                batch_id = await self.batcher.enqueue(custom_id, params, since=since)
                if turn is not None:
                    turn.record(batch_id, custom_id)
            outcome = await self.batcher.result(batch_id, custom_id)
            if outcome.type == "succeeded":
                response = message_response(
                    request.model,
                    outcome.result.get("message") or {},
                    batched=True,
                    batch_id=outcome.batch_id,
                    custom_id=outcome.custom_id,
                )
                _replay(response, on_stream)
                return response
            failure = batch_error(outcome)
            if not failure.transient:
                raise failure
        assert failure is not None
        raise ModelRequestError(
            f"{failure} (sent {self.settings.retries + 1} times; giving up)",
            code=failure.code,
        )

    def _log_fallback(self, failure: ModelRequestError | None) -> None:
        """A turn goes to the Messages API at full price: said once per cause."""
        cause = "an earlier life of the run" if failure is None else failure.code or "unknown"
        if cause in self._fell_back:
            return
        self._fell_back.add(cause)
        logger.warning(
            "model turns fall back to the Messages API at full price (fallback='messages') "
            "after their batched request failed (%s%s); further fallbacks for this cause are "
            "not logged",
            cause,
            "" if failure is None else f": {failure}",
        )

    async def aclose(self) -> None:
        await self.batcher.aclose()
        await self.messages.aclose()


def batch_error(outcome: BatchedResult) -> ModelRequestError:
    """Why a batched request has no message: transient when another batch may answer it
    (expired, canceled, overloaded, server or rate-limit errors), permanent otherwise."""
    where = f"in message batch {outcome.batch_id} (custom_id {outcome.custom_id})"
    if outcome.type in ("expired", "canceled"):
        return ModelRequestError(
            f"The model request {outcome.type} {where}.",
            transient=True,
            code=f"batch_{outcome.type}",
        )
    body: Any = outcome.result.get("error") or {}
    detail = body.get("error") if isinstance(body, dict) else None
    detail = detail if isinstance(detail, dict) else {}
    kind = str(detail.get("type") or "unknown")
    message = str(detail.get("message") or "no message")
    text = f"Anthropic API error ({kind}) {where}: {message}"
    if kind in _TRANSIENT_KINDS:
        return ModelRequestError(text, transient=True, code=_TRANSIENT_KINDS[kind])
    if any(sign in message.lower() for sign in _CONTEXT_OVERFLOW):
        return ModelRequestError(text, code="context_overflow")
    return ModelRequestError(text, code=kind)


def _replay(response: ModelResponse, on_stream: StreamListener) -> None:
    """Report a whole message as a stream would have, block by block."""
    for index, block in enumerate(response.content):
        if block["type"] == "text" and block["text"]:
            on_stream(TextDelta(block["text"]))
        elif block["type"] == "thinking" and not block.get("redacted"):
            on_stream(ThinkingStart(content_index=index))
            on_stream(ThinkingDelta(block["thinking"], content_index=index))
            on_stream(ThinkingEnd(block["thinking"], content_index=index))
