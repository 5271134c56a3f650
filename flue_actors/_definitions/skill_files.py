"""Skills written as files: a folder holding ``SKILL.md`` (YAML front matter with ``name`` and
``description``, then the instructions) and any supporting files, in the open Agent Skills
format Flue reads.

``load_skill(folder)`` imports such a folder as a :class:`SkillDefinition` when the workflow
module is loaded (Flue's ``import review from './skills/review/SKILL.md'``): validated
strictly, its other files becoming the skill's resources. The harness reads the same format
from a run's sandbox (:mod:`flue_actors._harness.workspace_context`), leniently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SkillDefinitionValidationError
from .skills import SkillDefinition

__all__ = ["ParsedSkill", "load_skill", "parse_skill_markdown"]

_FRONT_MATTER = re.compile(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)(.*)$", re.DOTALL)
_NAME = re.compile(r"[a-z0-9-]+")

# Folders that are never part of a skill, and files that must never leave the author's machine
# inside one (Flue's packaging rules).
_SKIPPED_FOLDERS = frozenset({".git", "node_modules", "__pycache__", "dist", ".venv", ".DS_Store"})
_SECRET_NAMES = re.compile(r"^(\.env(\..*)?|id_(rsa|dsa|ecdsa|ed25519)|.*\.(pem|key|p12|pfx))$")
_PRIVATE_KEY = "PRIVATE KEY-----"


@dataclass(frozen=True)
class ParsedSkill:
    name: str
    description: str
    instructions: str


def parse_skill_markdown(text: str, *, folder: str, path: str) -> ParsedSkill:
    """``SKILL.md``'s front matter and body; :class:`SkillDefinitionValidationError` unless it
    follows the Agent Skills specification (unknown fields are ignored, as Flue does)."""
    import yaml

    match = _FRONT_MATTER.match(text.removeprefix("\ufeff"))
    if match is None:
        raise SkillDefinitionValidationError(
            path=path,
            reason='is missing YAML front matter: start it with "---", give "name" and '
            '"description", and close the block with "---".',
        )
    try:
        # Every scalar a string, as in the spec's reference validator: `version: 1.0` stays text.
        fields: Any = yaml.load(match.group(1), Loader=yaml.BaseLoader)
    except yaml.YAMLError as error:
        reason = f"has invalid YAML front matter: {error}"
        raise SkillDefinitionValidationError(path=path, reason=reason) from None
    if not isinstance(fields, dict):
        raise SkillDefinitionValidationError(path=path, reason="front matter must be a mapping.")
    _required(fields, "name", path)
    # The name exactly as written: it names a folder and a tool argument, so " x" or "x\n" is
    # not "x".
    name: str = fields["name"]
    if len(name) > 64 or not _NAME.fullmatch(name):
        raise SkillDefinitionValidationError(
            path=path,
            reason=f'name "{name}" must be at most 64 lowercase letters, digits and hyphens.',
        )
    if name.startswith("-") or name.endswith("-") or "--" in name:
        raise SkillDefinitionValidationError(
            path=path,
            reason=f'name "{name}" must not start or end with a hyphen or repeat one.',
        )
    if name != folder:
        raise SkillDefinitionValidationError(
            path=path, reason=f'name "{name}" must match its folder "{folder}".'
        )
    description = _required(fields, "description", path)
    if len(description) > 1024:
        raise SkillDefinitionValidationError(
            path=path, reason="description must be at most 1024 characters."
        )
    return ParsedSkill(name, description, match.group(2).strip())


def _required(fields: dict[str, Any], key: str, path: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SkillDefinitionValidationError(
            path=path, reason=f"must give {key} in its front matter as a non-empty string."
        )
    return value.strip()


def load_skill(folder: str | Path) -> SkillDefinition:
    """The skill in ``folder`` (a folder holding ``SKILL.md``, or that file itself): its
    instructions are the body of ``SKILL.md``, every other text file in the folder is a
    resource named by its path relative to the folder. Read once, when called."""
    root = Path(folder)
    if root.name == "SKILL.md":
        root = root.parent
    skill_md = root / "SKILL.md"
    if not skill_md.is_file():
        raise SkillDefinitionValidationError(path=str(skill_md), reason="does not exist.")
    parsed = parse_skill_markdown(
        _read_text(skill_md), folder=root.resolve().name, path=str(skill_md)
    )
    resources: dict[str, str] = {}
    for file in sorted(_files(root)):
        relative = file.relative_to(root).as_posix()
        if relative == "SKILL.md":
            continue
        text = _read_text(file)
        if _PRIVATE_KEY in text:
            raise SkillDefinitionValidationError(
                path=str(file), reason="holds a private key; a skill must not carry secrets."
            )
        resources[relative] = text
    return SkillDefinition(parsed.name, parsed.description, parsed.instructions, resources)


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for entry in root.iterdir():
        if entry.is_symlink():
            # A link could point anywhere on the author's machine: refused, as Flue does.
            raise SkillDefinitionValidationError(
                path=str(entry), reason="is a symbolic link; a skill folder must not hold links."
            )
        if entry.is_dir():
            if entry.name not in _SKIPPED_FOLDERS:
                found.extend(_files(entry))
        elif entry.name in _SKIPPED_FOLDERS:
            continue
        elif _SECRET_NAMES.match(entry.name):
            raise SkillDefinitionValidationError(
                path=str(entry), reason="looks like a secret; a skill must not carry secrets."
            )
        else:
            found.append(entry)
    return found


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SkillDefinitionValidationError(
            path=str(file), reason="is not UTF-8 text; skill resources are text."
        ) from None
