"""Checks shared by the ``define_*`` functions, so each refuses a bad value in the same words."""

from __future__ import annotations

from ..errors import DefinitionError
from ..models._base import THINKING_LEVELS

__all__ = ["check_model", "check_thinking_level", "required_text"]


def required_text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"[flue] {where}({{ {key} }}) must be a non-empty string.")
    return value.strip()


def check_model(value: object, where: str) -> None:
    if not isinstance(value, str) or "/" not in value.strip("/"):
        raise DefinitionError(
            f"[flue] {where} requires a model written as 'provider/model-id' "
            f"(for example 'anthropic/claude-haiku-4-5'), got {value!r}."
        )


def check_thinking_level(value: object) -> None:
    if value is not None and value not in THINKING_LEVELS:
        raise DefinitionError(
            f"[flue] thinking_level must be one of {', '.join(THINKING_LEVELS)}, got {value!r}."
        )
