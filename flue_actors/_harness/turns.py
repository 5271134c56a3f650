"""How a model turn is described in its ``turn`` event: the response summary and the error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._events import error_payload
from ..errors import ModelRequestError
from ..models import ModelResponse
from .payloads import Correlation, LogWithAttributes

__all__ = ["model_retry_log", "response_info", "turn_error"]


def model_retry_log(
    error: ModelRequestError, attempt: int, delay_ms: int, correlation: Correlation
) -> LogWithAttributes:
    """The warning logged before a transient model error's turn is tried again."""
    return {
        "level": "warn",
        "message": "[flue:model-retry] Retrying transient model error",
        "attributes": {
            "attempt": attempt,
            "delayMs": delay_ms,
            "error": {**error_payload(error), "code": error.code},
        },
        **correlation,
    }


def turn_error(error: BaseException) -> dict[str, Any]:
    failure: dict[str, Any] = {"type": "model_error", **error_payload(error)}
    if isinstance(error, ModelRequestError):
        if error.code is not None:
            failure["code"] = error.code
        # Whether it was retried, and after how long the provider asked: what a replay of the
        # turn needs to take the same path.
        if error.transient:
            failure["transient"] = True
        if error.retry_after is not None:
            failure["retryAfter"] = error.retry_after
    return failure


def response_info(response: ModelResponse, output: Mapping[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "output": output,
        "usage": response.usage.to_wire(),
        "finishReason": response.stop_reason,
    }
    if response.response_id is not None:
        info["responseId"] = response.response_id
    if response.response_model is not None:
        info["responseModel"] = response.response_model
    if response.stop_reason == "error" and response.error_message is not None:
        info["errorMessage"] = response.error_message
    if response.batch_id is not None:
        info["batch"] = {"id": response.batch_id, "customId": response.custom_id}
    return info
