"""What a session learns from its sandbox's working directory, as Flue's context discovery:
``AGENTS.md`` (and ``CLAUDE.md``) joined to the system prompt after the agent's instructions,
and skills in ``.agents/skills/<name>/SKILL.md`` joining the agent's own.

A workspace skill stays in the workspace: its instructions are read from ``SKILL.md`` when it
is activated or run (so an edit made mid-run is seen), and its supporting files are ordinary
sandbox files. A malformed one is skipped with a warning rather than failing the session,
since nobody declared it; one named like a declared skill is an error.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from .._definitions.skill_files import parse_skill_markdown
from .._definitions.skills import SkillDefinition
from ..errors import DefinitionError, SkillDefinitionValidationError
from ..sandbox import SandboxFs

__all__ = [
    "Skill",
    "WorkspaceContext",
    "WorkspaceSkill",
    "discover",
    "merge_skills",
    "system_prompt",
]

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md")
SKILLS_FOLDER = ".agents/skills"


@dataclass(frozen=True)
class WorkspaceSkill:
    """A skill found in the sandbox: only its catalog line is kept; the rest is read on use."""

    name: str
    description: str
    folder: str  # absolute sandbox path

    @property
    def skill_md(self) -> str:
        return posixpath.join(self.folder, "SKILL.md")

    async def instructions(self, fs: SandboxFs) -> str:
        """The body of ``SKILL.md`` as it is now."""
        text = await fs.read_file(self.skill_md)
        return parse_skill_markdown(text, folder=self.name, path=self.skill_md).instructions

    def resource_path(self, resource: str) -> str | None:
        """The sandbox path of a supporting file, or None if ``resource`` leaves the folder."""
        joined = posixpath.normpath(posixpath.join(self.folder, resource))
        return joined if joined.startswith(self.folder + "/") else None


Skill: TypeAlias = SkillDefinition | WorkspaceSkill


@dataclass(frozen=True)
class WorkspaceContext:
    instructions: str = ""
    skills: Mapping[str, WorkspaceSkill] = field(default_factory=dict)


EMPTY = WorkspaceContext()


async def discover(fs: SandboxFs, cwd: str, warn: Callable[[str], None]) -> WorkspaceContext:
    """Read the instruction files and the skills folder in ``cwd`` (an absolute path)."""
    parts = []
    for name in INSTRUCTION_FILES:
        path = posixpath.join(cwd, name)
        if await fs.exists(path):
            parts.append((await fs.read_file(path)).strip())
    skills: dict[str, WorkspaceSkill] = {}
    skills_folder = posixpath.join(cwd, SKILLS_FOLDER)
    if await fs.exists(skills_folder):
        for entry in await fs.readdir(skills_folder):
            folder = posixpath.join(skills_folder, entry)
            skill_md = posixpath.join(folder, "SKILL.md")
            try:
                if not (await fs.stat(folder)).is_directory or not await fs.exists(skill_md):
                    continue
                parsed = parse_skill_markdown(
                    await fs.read_file(skill_md), folder=entry, path=skill_md
                )
            except SkillDefinitionValidationError as error:
                warn(f'[flue] Skipping invalid workspace skill "{entry}": {error.message}')
                continue
            except (OSError, UnicodeDecodeError) as error:
                warn(f'[flue] Skipping unreadable workspace skill "{entry}": {error}')
                continue
            skills[parsed.name] = WorkspaceSkill(parsed.name, parsed.description, folder)
    return WorkspaceContext("\n\n".join(part for part in parts if part), skills)


def merge_skills(
    declared: Mapping[str, SkillDefinition], found: Mapping[str, WorkspaceSkill]
) -> dict[str, Skill]:
    merged: dict[str, Skill] = dict(declared)
    for name, skill in found.items():
        if name in merged:
            raise DefinitionError(
                f'[flue] Skill name "{name}" appears in both the agent definition and the '
                "workspace's .agents/skills."
            )
        merged[name] = skill
    return merged


def system_prompt(
    instructions: str | None, context: WorkspaceContext, skills: Mapping[str, Skill]
) -> str | None:
    """The agent's instructions, then the workspace's, then the skill catalog (Flue's order);
    None when there is none of them."""
    parts = [part for part in (instructions, context.instructions) if part]
    if skills:
        catalog = "\n".join(f"- **{s.name}** — {s.description}" for s in skills.values())
        parts.append(
            "## Available Skills\n\n"
            "The following skills provide specialized instructions for specific tasks. When a "
            "task matches a skill description, call the `activate_skill` tool with that skill "
            "name before proceeding so its full instructions are loaded.\n\n" + catalog
        )
    return "\n\n".join(parts) or None
