"""Skills in a session: the text ``session.skill()`` sends, and the model's skill tools."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..definitions import SkillDefinition
from ..jsonvalue import snapshot
from .framework import FrameworkTool, ToolFailure

__all__ = ["skill_prompt", "skill_tools"]


def _body(skill: SkillDefinition) -> str:
    parts = [skill.instructions]
    if skill.resources:
        names = ", ".join(f'"{name}"' for name in skill.resources)
        parts.append(f"Resources (read them with `read_skill_resource`): {names}")
    return "\n\n".join(parts)


def skill_prompt(skill: SkillDefinition, args: Any = None) -> str:
    """``Run the skill named "<name>".``, the skill's instructions and resource names, then
    ``Arguments:`` and the arguments as 2-space-indented JSON when given (as Flue writes it)."""
    parts = [f'Run the skill named "{skill.name}".', _body(skill)]
    if args is not None:
        parts.append("Arguments:\n" + json.dumps(snapshot(args), indent=2, ensure_ascii=False))
    return "\n\n".join(parts)


def skill_tools(skills: Mapping[str, SkillDefinition]) -> dict[str, FrameworkTool]:
    """``activate_skill`` and ``read_skill_resource``, when the agent has skills."""
    if not skills:
        return {}

    def find(name: object) -> SkillDefinition:
        skill = skills.get(name) if isinstance(name, str) else None
        if skill is None:
            raise ToolFailure(f'Skill "{name}" is not registered. Skills: {", ".join(skills)}.')
        return skill

    async def activate(arguments: dict[str, Any], _turn: dict[str, Any]) -> str:
        return _body(find(arguments.get("name")))

    async def read_resource(arguments: dict[str, Any], _turn: dict[str, Any]) -> str:
        skill = find(arguments.get("skill"))
        resource = arguments.get("resource")
        if not isinstance(resource, str) or resource not in skill.resources:
            raise ToolFailure(f'Skill "{skill.name}" has no resource "{resource}".')
        return skill.resources[resource]

    listing = "; ".join(f"{skill.name}: {skill.description}" for skill in skills.values())
    names = {"type": "string", "enum": list(skills)}
    return {
        "activate_skill": FrameworkTool(
            "activate_skill",
            f"Load a skill's instructions. Skills: {listing}",
            {"type": "object", "properties": {"name": names}, "required": ["name"]},
            activate,
        ),
        "read_skill_resource": FrameworkTool(
            "read_skill_resource",
            "Read one of a skill's resources by name.",
            {
                "type": "object",
                "properties": {"skill": names, "resource": {"type": "string"}},
                "required": ["skill", "resource"],
            },
            read_resource,
        ),
    }
