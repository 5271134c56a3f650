"""Skills in a session: the text ``session.skill()`` sends, and the model's skill tools.

A declared skill (``define_skill``, ``load_skill``) carries its instructions and resources; a
workspace skill's are read from the sandbox when used, so the model sees the file as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .._definitions import SkillDefinition
from .._jsonvalue import snapshot
from ..sandbox import SandboxFs
from .framework import FrameworkTool, ToolFailure
from .payloads import TurnCorrelation
from .workspace_context import Skill, WorkspaceSkill

__all__ = ["skill_prompt", "skill_tools"]

FsGetter = Callable[[], SandboxFs]


async def _body(skill: Skill, fs: FsGetter) -> str:
    if isinstance(skill, WorkspaceSkill):
        # Edited into something invalid, or removed, since it was found: the error reaches the
        # model (activate_skill) or the caller (session.skill) as it is.
        instructions = await skill.instructions(fs())
        return (
            f"{instructions}\n\nSupporting files are in the folder {skill.folder} (read them "
            "with `read_skill_resource` or `read`, by paths relative to that folder)."
        )
    parts = [skill.instructions]
    if skill.resources:
        names = ", ".join(f'"{name}"' for name in skill.resources)
        parts.append(f"Resources (read them with `read_skill_resource`): {names}")
    return "\n\n".join(parts)


async def skill_prompt(skill: Skill, args: Any, fs: FsGetter) -> str:
    """``Run the skill named "<name>".``, the skill's instructions and resource names, then
    ``Arguments:`` and the arguments as 2-space-indented JSON when given (as Flue writes it)."""
    parts = [f'Run the skill named "{skill.name}".', await _body(skill, fs)]
    if args is not None:
        parts.append("Arguments:\n" + json.dumps(snapshot(args), indent=2, ensure_ascii=False))
    return "\n\n".join(parts)


async def _resource(skill: Skill, resource: object, fs: FsGetter) -> str:
    if isinstance(skill, SkillDefinition):
        if not isinstance(resource, str) or resource not in skill.resources:
            raise ToolFailure(f'Skill "{skill.name}" has no resource "{resource}".')
        return skill.resources[resource]
    path = skill.resource_path(resource) if isinstance(resource, str) and resource else None
    if path is None:
        raise ToolFailure(f'Skill "{skill.name}" has no resource "{resource}".')
    try:
        return await fs().read_file(path)
    except (OSError, UnicodeDecodeError):
        raise ToolFailure(f'Skill "{skill.name}" has no resource "{resource}".') from None


def skill_tools(skills: Mapping[str, Skill], fs: FsGetter) -> dict[str, FrameworkTool]:
    """``activate_skill`` and ``read_skill_resource``, when the agent has skills."""
    if not skills:
        return {}

    def find(name: object) -> Skill:
        skill = skills.get(name) if isinstance(name, str) else None
        if skill is None:
            raise ToolFailure(f'Skill "{name}" is not registered. Skills: {", ".join(skills)}.')
        return skill

    async def activate(arguments: dict[str, Any], _turn: TurnCorrelation) -> str:
        return await _body(find(arguments.get("name")), fs)

    async def read_resource(arguments: dict[str, Any], _turn: TurnCorrelation) -> str:
        return await _resource(find(arguments.get("skill")), arguments.get("resource"), fs)

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
