"""What operations resolve to: prompt responses, structured results, and the internal outcome
an operation hands to its bracket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..models import Usage

__all__ = ["ModelRef", "Outcome", "PromptResponse", "PromptResultResponse"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelRef:
    provider: str
    id: str


@dataclass(frozen=True, slots=True)
class PromptResponse:
    text: str
    usage: Usage
    model: ModelRef


@dataclass(frozen=True, slots=True)
class PromptResultResponse(Generic[T]):
    """A prompt's structured result: ``data`` is the validated value the model gave ``finish``."""

    data: T
    usage: Usage
    model: ModelRef


@dataclass(frozen=True, slots=True)
class Outcome:
    value: Any
    usage: Usage
    wire_result: Any
    # What a task reports as its result: the reply text, or the structured result as JSON.
    text: str = ""
