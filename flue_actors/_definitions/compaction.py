"""``CompactionConfig``: how an agent's conversations are compacted near the model's window,
set on an agent (``compaction=``) or on a profile, which a task speaking as it follows."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import DefinitionError

__all__ = ["CompactionConfig"]


@dataclass(frozen=True, kw_only=True)
class CompactionConfig:
    """How an agent's conversations are compacted when they near the model's context window
    (Flue's ``compaction`` config). Each field left ``None`` takes the default derived from the
    model: ``reserve_tokens`` is the headroom kept free below the window (20,000, at most the
    model's output limit), ``keep_recent_tokens`` how much of the latest conversation stays
    verbatim (8,000), ``model`` the ``provider/model`` that writes the summary (the agent's)."""

    reserve_tokens: int | None = None
    keep_recent_tokens: int | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        for name in ("reserve_tokens", "keep_recent_tokens"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise DefinitionError(
                    f"[flue] compaction.{name} must be a non-negative integer, got {value!r}."
                )
        if self.model is not None and (
            not isinstance(self.model, str) or "/" not in self.model.strip("/")
        ):
            raise DefinitionError(
                "[flue] compaction.model must be written as 'provider/model-id', "
                f"got {self.model!r}."
            )

    @classmethod
    def of(cls, value: object) -> CompactionConfig | Literal[False] | None:
        """``value`` as an agent's compaction setting: ``None`` (the defaults), ``False`` (no
        automatic compaction), a :class:`CompactionConfig` or a mapping of its fields."""
        if value is None or value is False or isinstance(value, CompactionConfig):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            for key in value:
                if key not in known:
                    raise DefinitionError(f'[flue] compaction received unknown field "{key}".')
            return cls(**value)
        raise DefinitionError(
            "[flue] compaction must be False, a CompactionConfig or a mapping of its fields, "
            f"got {value!r}."
        )
