"""``define_skill``: a named set of instructions (and optional text resources) the agent runs
on request (``session.skill(name)``, or the model's ``activate_skill``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import DefinitionError
from ._checks import required_text

__all__ = ["SkillDefinition", "define_skill"]


@dataclass(frozen=True, eq=False)
class SkillDefinition:
    """An inline skill: ``instructions`` the agent follows, ``resources`` it may read by name."""

    name: str
    description: str
    instructions: str
    resources: Mapping[str, str] = field(default_factory=dict)


def define_skill(
    *, name: str, description: str, instructions: str, resources: Mapping[str, str] | None = None
) -> SkillDefinition:
    name = required_text(name, "define_skill", "name")
    description = required_text(description, "define_skill", "description")
    instructions = required_text(instructions, "define_skill", "instructions")
    resources = dict(resources or {})
    for key, value in resources.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise DefinitionError(
                "[flue] define_skill({ resources }) must map non-empty names to text."
            )
    return SkillDefinition(name, description, instructions, resources)
