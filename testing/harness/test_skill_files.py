"""Skills and instructions from files (issue 15 item 2): ``load_skill`` imports a ``SKILL.md``
folder strictly; a session discovers ``AGENTS.md``/``CLAUDE.md`` and ``.agents/skills`` in its
sandbox's working directory (virtual and local sandboxes), joined to the system prompt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flue_actors import (
    ActionContext,
    DefinitionError,
    SkillDefinitionValidationError,
    SkillNotRegisteredError,
    define_agent,
    define_skill,
    define_workflow,
    load_skill,
)
from flue_actors._definitions.skill_files import parse_skill_markdown
from flue_actors.sandbox import LocalSandbox, SandboxContext
from flue_actors.testing import FakeModel, FakeToolCall, FlueTestKit

from .support import make_harness

SKILL_MD = """---
name: review
description: Review a change against the checklist. Use when asked to review.
license: MIT
metadata:
  owner: docs
---

Read CHECKLIST.md, then review the diff against every item.
"""


def write_skill(root: Path, files: dict[str, str]) -> Path:
    folder = root / "review"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


# --- load_skill -------------------------------------------------------------------------------


async def test_load_skill_reads_the_folder_and_the_session_uses_it(tmp_path: Path) -> None:
    folder = write_skill(
        tmp_path,
        {
            "SKILL.md": SKILL_MD,
            "CHECKLIST.md": "1. tests\n",
            "templates/reply.txt": "Thanks!",
            "node_modules/x/index.js": "ignored",
        },
    )
    skill = load_skill(folder)
    assert (skill.name, skill.instructions) == (
        "review",
        "Read CHECKLIST.md, then review the diff against every item.",
    )
    assert skill.description.startswith("Review a change")
    assert dict(skill.resources) == {"CHECKLIST.md": "1. tests\n", "templates/reply.txt": "Thanks!"}
    assert load_skill(folder / "SKILL.md").resources == skill.resources

    read = FakeToolCall("read_skill_resource", {"skill": "review", "resource": "CHECKLIST.md"}, "r")
    fake = FakeModel().reply(tool_calls=[read]).reply("reviewed")
    harness, sink = make_harness(fake, skills=[skill])
    await (await harness.session()).skill("review")
    [done] = sink.of("tool")
    assert done["result"]["content"][0]["text"] == "1. tests\n"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"SKILL.md": "no front matter"}, "missing YAML front matter"),
        ({"SKILL.md": "---\nname: [unclosed\n---\n"}, "invalid YAML front matter"),
        ({"SKILL.md": "---\n- a list\n---\n"}, "must be a mapping"),
        ({"SKILL.md": "---\ndescription: d\n---\n"}, "must give name"),
        ({"SKILL.md": "---\nname: review\n---\n"}, "must give description"),
        ({"SKILL.md": "---\nname: Review\ndescription: d\n---\n"}, "lowercase letters"),
        ({"SKILL.md": "---\nname: other\ndescription: d\n---\n"}, 'match its folder "review"'),
        ({"SKILL.md": "---\nname: review\ndescription: " + "x" * 1025 + "\n---\n"}, "1024"),
        ({"SKILL.md": SKILL_MD, ".env": "TOKEN=1"}, "looks like a secret"),
        ({"SKILL.md": SKILL_MD, "deploy.pem": "x"}, "looks like a secret"),
        ({"SKILL.md": SKILL_MD, "k.txt": "-----BEGIN RSA PRIVATE KEY-----"}, "private key"),
    ],
)
def test_load_skill_refuses_invalid_folders(
    tmp_path: Path, files: dict[str, str], reason: str
) -> None:
    folder = write_skill(tmp_path, files)
    with pytest.raises(SkillDefinitionValidationError, match=reason) as caught:
        load_skill(folder)
    assert caught.value.type == "skill_definition_validation"
    assert isinstance(caught.value, DefinitionError)


def test_load_skill_refuses_links_binary_files_and_a_missing_skill_md(tmp_path: Path) -> None:
    folder = write_skill(tmp_path, {"SKILL.md": SKILL_MD})
    os.symlink("/etc/hostname", folder / "host")
    with pytest.raises(SkillDefinitionValidationError, match="symbolic link"):
        load_skill(folder)
    (folder / "host").unlink()
    (folder / "logo.png").write_bytes(b"\x89PNG\xff\xfe")
    with pytest.raises(SkillDefinitionValidationError, match="not UTF-8"):
        load_skill(folder)
    with pytest.raises(SkillDefinitionValidationError, match="does not exist"):
        load_skill(tmp_path / "nowhere")


_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_NAMES = st.lists(_SEGMENT, min_size=1, max_size=4).map("-".join).filter(lambda n: len(n) <= 64)
_DESCRIPTIONS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=80,
).filter(lambda d: d.strip() != "")


@given(name=_NAMES, description=_DESCRIPTIONS, body=st.text(max_size=200))
def test_front_matter_round_trips(name: str, description: str, body: str) -> None:
    quoted = description.replace("\\", "\\\\").replace('"', '\\"')
    text = f'---\nname: {name}\ndescription: "{quoted}"\n---\n{body}'
    parsed = parse_skill_markdown(text, folder=name, path="SKILL.md")
    assert (parsed.name, parsed.description, parsed.instructions) == (
        name,
        description.strip(),
        body.strip(),
    )


# Raw line breaks inside a quoted YAML scalar are folded by YAML itself (the name read is not the
# text written), so the property draws names without them; escaped ones are tested below.
_YAML_LINE_BREAKS = "\r\n\x85\u2028\u2029"
_names = st.text(st.characters(blacklist_characters=_YAML_LINE_BREAKS), min_size=1, max_size=70)


@given(name=_names)
def test_only_spec_names_are_accepted(name: str) -> None:
    valid = (
        len(name) <= 64
        and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in name)
        and not name.startswith("-")
        and not name.endswith("-")
        and "--" not in name
    )
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    text = f'---\nname: "{quoted}"\ndescription: d\n---\n'
    try:
        parsed = parse_skill_markdown(text, folder=name.strip(), path="SKILL.md")
    except SkillDefinitionValidationError:
        assert not valid or name != name.strip()
    else:
        assert valid
        assert parsed.name == name


@pytest.mark.parametrize("escaped", ["abc\\n", "abc\\r", "\\nabc", "ab\\tc"])
def test_a_name_with_an_escaped_control_character_is_refused(escaped: str) -> None:
    text = f'---\nname: "{escaped}"\ndescription: d\n---\n'
    with pytest.raises(SkillDefinitionValidationError):
        parse_skill_markdown(text, folder="abc", path="SKILL.md")


# --- the workspace ----------------------------------------------------------------------------

GREET_MD = "---\nname: greet\ndescription: Greet someone.\n---\nSay hello to {who}.\n"


async def populate(fs: Any) -> None:
    await fs.write_file("AGENTS.md", "Repository rules.\n")
    await fs.write_file("CLAUDE.md", "Claude rules.")
    await fs.write_file(".agents/skills/greet/SKILL.md", GREET_MD)
    await fs.write_file(".agents/skills/greet/notes.txt", "Be warm.")
    await fs.write_file(".agents/skills/broken/SKILL.md", "no front matter")
    await fs.write_file(".agents/skills/stray.txt", "not a skill folder")


def text_of(event: dict[str, Any]) -> str:
    return str(event["result"]["content"][0]["text"])


@pytest.mark.parametrize("sandbox", ["virtual", "local"])
async def test_workspace_instructions_and_skills_join_the_session(sandbox: str) -> None:
    calls = [
        FakeToolCall("activate_skill", {"name": "greet"}, "a1"),
        FakeToolCall("read_skill_resource", {"skill": "greet", "resource": "notes.txt"}, "r1"),
        FakeToolCall(
            "read_skill_resource", {"skill": "greet", "resource": "../../AGENTS.md"}, "r2"
        ),
    ]
    fake = FakeModel().reply(tool_calls=calls).reply("hello")
    harness, sink = make_harness(
        fake, instructions="Be kind.", sandbox=sandbox, skills=[define_skill(
            name="cite", description="Cite sources.", instructions="Cite."
        )]
    )  # fmt: skip
    try:
        await populate(harness.fs)
        await (await harness.session()).prompt("hi")
    finally:
        await harness.close()

    assert fake.requests[0].system_prompt == (
        "Be kind.\n\nRepository rules.\n\nClaude rules.\n\n## Available Skills\n\n"
        "The following skills provide specialized instructions for specific tasks. When a task "
        "matches a skill description, call the `activate_skill` tool with that skill name "
        "before proceeding so its full instructions are loaded.\n\n"
        "- **cite** — Cite sources.\n- **greet** — Greet someone."
    )
    activated, resource, escaped = sink.of("tool")
    assert text_of(activated) == (
        "Say hello to {who}.\n\nSupporting files are in the folder "
        "/workspace/.agents/skills/greet (read them with `read_skill_resource` or `read`, by "
        "paths relative to that folder)."
    )
    assert (resource["isError"], text_of(resource)) == (False, "Be warm.")
    assert escaped["isError"]
    assert text_of(escaped) == 'Skill "greet" has no resource "../../AGENTS.md".'
    [warning] = [e for e in sink.of("log") if e["level"] == "warn"]
    assert warning["message"].startswith('[flue] Skipping invalid workspace skill "broken": ')


async def test_a_workspace_skill_is_read_when_used_and_run_by_name() -> None:
    fake = FakeModel().reply("one").reply("two")
    harness, _sink = make_harness(fake)
    await populate(harness.fs)
    session = await harness.session()
    await session.skill("greet", args={"who": "Ada"})
    await harness.fs.write_file(
        ".agents/skills/greet/SKILL.md", GREET_MD.replace("hello", "goodbye")
    )
    await session.skill("greet")
    first, second = (request.messages[-1]["content"][0]["text"] for request in fake.requests)
    assert first.startswith('Run the skill named "greet".\n\nSay hello to {who}.\n\n')
    assert first.endswith('Arguments:\n{\n  "who": "Ada"\n}')
    assert second.startswith('Run the skill named "greet".\n\nSay goodbye to {who}.')


async def test_an_unknown_skill_with_a_workspace_fails_its_operation() -> None:
    harness, sink = make_harness(FakeModel())
    await populate(harness.fs)
    with pytest.raises(SkillNotRegisteredError):
        await (await harness.session()).skill("nope")
    [operation] = sink.of("operation")
    assert operation["error"]["type"] == "skill_not_registered"


async def test_a_task_reads_the_workspace_of_its_own_folder() -> None:
    fake = FakeModel().reply("parent").reply("child")
    harness, _sink = make_harness(fake)
    await harness.fs.write_file("AGENTS.md", "Top rules.")
    await harness.fs.write_file("pkg/AGENTS.md", "Package rules.")
    session = await harness.session()
    await session.prompt("hi")
    await session.task("work here", cwd="pkg")
    parent, child = (request.system_prompt for request in fake.requests)
    assert (parent, child) == ("Top rules.", "Package rules.")


async def test_a_workspace_skill_named_like_a_declared_one_is_an_error() -> None:
    declared = define_skill(name="greet", description="Mine.", instructions="Wave.")
    harness, _sink = make_harness(FakeModel(), skills=[declared])
    await populate(harness.fs)
    with pytest.raises(DefinitionError, match='Skill name "greet" appears in both'):
        await (await harness.session()).prompt("hi")


async def test_nothing_is_read_and_no_sandbox_made_when_none_was_used() -> None:
    fake = FakeModel().reply("ok")
    harness, _sink = make_harness(fake, instructions="Only this.")
    await (await harness.session()).prompt("hi")
    assert fake.requests[0].system_prompt == "Only this."
    assert harness._sandbox_slot.made is None


async def test_a_factory_sandbox_that_comes_populated_is_discovered(tmp_path: Path) -> None:
    def checkout(context: SandboxContext) -> LocalSandbox:
        # A sandbox that arrives with a repository in it, as a checkout would.
        sandbox = LocalSandbox(cwd=context.cwd)
        (sandbox.fs.host_path(context.cwd) / "AGENTS.md").write_text("Checked-out rules.")
        return sandbox

    fake = FakeModel().reply("ok")
    harness, _sink = make_harness(fake, sandbox=checkout)
    try:
        await (await harness.session()).prompt("hi")
    finally:
        await harness.close()
    assert fake.requests[0].system_prompt == "Checked-out rules."


async def stage_and_prompt(ctx: ActionContext[None]) -> str:
    await ctx.harness.fs.write_file("AGENTS.md", "Answer in French.")
    session = await ctx.harness.session()
    return (await session.prompt("hello")).text


async def test_a_workflow_that_stages_agents_md_prompts_with_it() -> None:
    workflow = define_workflow(agent=define_agent(model="fake/echo"), run=stage_and_prompt)
    fake = FakeModel().reply("bonjour")
    kit = FlueTestKit(fake)
    try:
        run = await kit.run_async(workflow)
    finally:
        await kit.aclose()
    assert run.result == "bonjour"
    assert fake.requests[0].system_prompt == "Answer in French."
