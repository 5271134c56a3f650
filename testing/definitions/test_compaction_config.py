"""The agent's ``compaction`` config (reference 1.3): ``False``, or reserve / keep-recent tokens
and a summary model, validated at definition time; and the settings derived for a model."""

from __future__ import annotations

from typing import Any

import pytest

from flue_actors import AgentConfig, CompactionConfig, DefinitionError, define_agent
from flue_actors._harness.context_budget import (
    CompactionSettings,
    context_tokens,
    estimate_message_tokens,
    resolve_settings,
)
from flue_actors.models import ModelLimits


def test_a_mapping_becomes_the_typed_config() -> None:
    config = AgentConfig.from_mapping(
        {"model": "fake/echo", "compaction": {"reserve_tokens": 1000, "keep_recent_tokens": 0}}
    )
    assert config.compaction == CompactionConfig(reserve_tokens=1000, keep_recent_tokens=0)


@pytest.mark.parametrize(
    "value", [None, False, CompactionConfig(model="anthropic/claude-haiku-4-5")]
)
def test_none_false_and_a_config_are_kept(value: Any) -> None:
    assert AgentConfig(model="fake/echo", compaction=value).compaction == value


async def test_define_agent_accepts_it_from_an_initializer() -> None:
    from flue_actors._definitions import AgentContext

    agent = define_agent(lambda _ctx: {"model": "fake/echo", "compaction": False})
    config = await agent.configure(AgentContext(id="run_1", env={}))
    assert config.compaction is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"reserveTokens": 10}, 'compaction received unknown field "reserveTokens"'),
        ({"reserve_tokens": -1}, "compaction.reserve_tokens must be a non-negative integer"),
        ({"keep_recent_tokens": 1.5}, "compaction.keep_recent_tokens must be a non-negative"),
        ({"keep_recent_tokens": True}, "compaction.keep_recent_tokens must be a non-negative"),
        ({"model": "haiku"}, "compaction.model must be written as 'provider/model-id'"),
        (True, "compaction must be False, a CompactionConfig or a mapping"),
        ("off", "compaction must be False, a CompactionConfig or a mapping"),
    ],
)
def test_bad_values_are_refused_at_definition(value: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        define_agent(model="fake/echo", compaction=value)


# --- the settings for a model --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "reserve"),
    [
        (ModelLimits(200_000, 64_000), 20_000),  # the default
        (ModelLimits(200_000, 8_192), 8_192),  # no more than one answer can use
        (ModelLimits(0, 0), 20_000),  # nothing known
        (ModelLimits(30_000, 0), 10_000),  # reserve would be half the window: a third of it
        (ModelLimits(2_000, 0), 1_024),  # with a floor
    ],
)
def test_the_default_reserve_follows_the_model(limits: ModelLimits, reserve: int) -> None:
    assert resolve_settings(None, limits) == CompactionSettings(
        context_window=limits.context_window, reserve_tokens=reserve, keep_recent_tokens=8_000
    )


def test_given_values_win_and_false_turns_it_off() -> None:
    given = CompactionConfig(reserve_tokens=0, keep_recent_tokens=5, model="fake/small")
    assert resolve_settings(given, ModelLimits(2_000, 0)) == CompactionSettings(
        2_000, 0, 5, "fake/small"
    )
    assert resolve_settings(False, ModelLimits(200_000, 64_000)) is None


def test_the_threshold_is_the_window_less_the_reserve() -> None:
    settings = resolve_settings(None, ModelLimits(200_000, 64_000))
    assert settings is not None
    assert not settings.exceeded(180_000)
    assert settings.exceeded(180_001)
    unknown = resolve_settings(None, ModelLimits())
    assert unknown is not None
    assert not unknown.exceeded(10**9)


def _assistant(text: str, total: int, stop: str = "stop") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "usage": {"totalTokens": total},
        "stopReason": stop,
    }


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def test_context_tokens_count_the_last_usage_and_estimate_the_rest() -> None:
    messages = [_user("a" * 40), _assistant("b" * 8, 500), _user("c" * 41)]
    assert estimate_message_tokens(messages[2]) == 11
    assert context_tokens(messages) == 500 + 11
    # A failed turn's usage says nothing; neither does usage from before a compaction.
    failed = [*messages, _assistant("", 900, stop="error")]
    assert context_tokens(failed) == 500 + 11
    assert context_tokens(messages, counted_from=2) == 10 + 2 + 11
    image = {"role": "user", "content": [{"type": "image", "data": "x" * 10**6}]}
    assert estimate_message_tokens(image) == 1200
