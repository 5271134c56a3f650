"""The kit's replay checks: ``flue.replay(run)`` (Temporal's Replayer) and always-replay
(Restate's), written as a user's tests would be."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_tool, define_workflow
from flue_actors.testing import FakeModel, FlueTestKit, ReplayMismatchError


class Topic(BaseModel):
    topic: str


class Note(BaseModel):
    text: str


async def save(args: Note) -> str:
    return f"saved {args.text}"


agent = define_agent(
    model="fake/model",
    tools=[define_tool(name="save", description="Save a note.", input=Note, run=save)],
)


async def research(ctx: ActionContext[Topic]) -> dict[str, str]:
    session = await ctx.harness.session()
    first = await session.prompt(f"Research {ctx.input.topic}.")
    listing = await ctx.harness.shell("echo notes")
    second = await session.prompt("Summarize.")
    return {"first": first.text, "listing": listing.stdout, "second": second.text}


async def research_v2(ctx: ActionContext[Topic]) -> dict[str, str]:
    session = await ctx.harness.session()
    second = await session.prompt("Summarize.")  # the session's prompts swapped
    first = await session.prompt(f"Research {ctx.input.topic}.")
    listing = await ctx.harness.shell("echo notes")
    return {"first": first.text, "listing": listing.stdout, "second": second.text}


async def dice(ctx: ActionContext[Topic]) -> dict[str, str]:
    session = await ctx.harness.session()
    if random.random() < 0.5:  # nondeterminism outside the harness
        await ctx.harness.shell("echo heads")
    return {"text": (await session.prompt(ctx.input.topic)).text}


def script(fake_model: FakeModel) -> None:
    fake_model.reply("Looking.", tool_calls=[("save", {"text": "a"})])
    fake_model.reply("Found it.")
    fake_model.reply("In short: it.")


def test_replay_passes_when_the_code_makes_the_same_operations(
    flue: FlueTestKit, fake_model: FakeModel
) -> None:
    script(fake_model)
    run = flue.run(define_workflow(agent=agent, input=Topic, run=research), {"topic": "x"})
    assert run.status == "completed"
    calls = len(fake_model.requests)

    flue.replay(run)

    assert len(fake_model.requests) == calls  # answered from the log, no model call


def test_replay_fails_with_a_diff_when_the_code_changed(fake_model: FakeModel) -> None:
    script(fake_model)
    old = FlueTestKit(
        fake_model, workflows={"research": define_workflow(agent=agent, input=Topic, run=research)}
    )
    new = FlueTestKit(
        fake_model,
        workflows={"research": define_workflow(agent=agent, input=Topic, run=research_v2)},
    )
    try:
        run = old.run("research", {"topic": "x"})
        assert run.status == "completed"
        old.replay(run)  # the code that made it replays it

        with pytest.raises(ReplayMismatchError) as failure:
            new.replay(run)
    finally:
        old.close()
        new.close()

    message = str(failure.value)
    assert "Replay diverged at event" in message
    assert "--- the run's log" in message
    assert "+++ the code now" in message
    assert "the log holds message_start (session 'default') 'Research x.'" in message
    assert "the code asks for message_start (session 'default') 'Summarize.'" in message
    assert "\n-message_start (session 'default') 'Research x.'" in message
    assert "\n+message_start (session 'default') 'Summarize.'" in message


def test_always_replay_catches_nondeterminism(fake_model: FakeModel) -> None:
    fake_model.respond_with(lambda request: "ok")
    kit = FlueTestKit(fake_model, always_replay=True)
    try:
        workflow = define_workflow(agent=agent, input=Topic, run=dice)

        def twenty_runs() -> None:
            for _ in range(20):  # each run is replayed after every operation
                kit.run(workflow, {"topic": "coin"})

        with pytest.raises(ReplayMismatchError):
            twenty_runs()
    finally:
        kit.close()


def test_always_replay_passes_a_deterministic_workflow(fake_model: FakeModel) -> None:
    script(fake_model)
    kit = FlueTestKit(fake_model, always_replay=True)
    try:
        run = kit.run(define_workflow(agent=agent, input=Topic, run=research), {"topic": "x"})
        assert run.status == "completed"
        assert len(fake_model.requests) == 3  # the checks asked the log, not the model
    finally:
        kit.close()


def test_the_ini_setting_turns_always_replay_on_for_a_project(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "coin.py").write_text(
        textwrap.dedent(
            """
            import random
            from flue_actors import ActionContext, define_agent, define_workflow

            @define_workflow(agent=define_agent(model="fake/m"))
            async def coin(ctx: ActionContext[None]) -> str:
                session = await ctx.harness.session()
                if random.random() < 0.5:
                    await ctx.harness.shell("echo heads")
                return (await session.prompt("flip")).text
            """
        )
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_coin.py").write_text(
        textwrap.dedent(
            """
            def test_coin(flue, fake_model):
                fake_model.respond_with(lambda request: "ok")
                for _ in range(20):
                    assert flue.run("coin").status == "completed"
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nflue_always_replay = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ReplayMismatchError" in result.stdout
