"""The one tool-name rule (``check_tool_names``) and the profile merge, as properties: every
list of an agent's own model tools is accepted exactly when its names are unique and none is
a built-in or framework tool's, wherever the list comes from."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import (
    AgentConfig,
    ToolDefinition,
    ToolNameConflictError,
    define_agent_profile,
    define_tool,
)
from flue_actors._definitions import BUILTIN_TOOL_NAMES, RESERVED_TOOL_NAMES, check_tool_names


class Nothing(BaseModel):
    pass


async def _run(_args: Nothing) -> str:
    return ""


# A small alphabet makes repeats likely; the taken names are mixed in on purpose.
NAMES = st.lists(
    st.sampled_from(["a", "b", "c", "d", *BUILTIN_TOOL_NAMES, *sorted(RESERVED_TOOL_NAMES)]),
    max_size=6,
)


def _acceptable(names: list[str]) -> bool:
    taken = set(BUILTIN_TOOL_NAMES) | RESERVED_TOOL_NAMES
    return len(names) == len(set(names)) and not taken.intersection(names)


def _verdict(check: Callable[[], object]) -> bool:
    try:
        check()
    except ToolNameConflictError:
        return False
    return True


@given(NAMES)
def test_agents_profiles_and_the_rule_agree(names: list[str]) -> None:
    tools = [define_tool(name=n, description="d", input=Nothing, run=_run) for n in names]
    expected = _acceptable(names)
    assert _verdict(lambda: check_tool_names(names)) is expected
    assert _verdict(lambda: AgentConfig(model="fake/echo", tools=tools)) is expected
    assert _verdict(lambda: define_agent_profile(name="p", tools=tools)) is expected


@given(NAMES, NAMES)
def test_an_agent_on_a_profile_holds_both_tool_lists_under_the_rule(
    base: list[str], own: list[str]
) -> None:
    def tools(names: list[str]) -> list[ToolDefinition]:
        return [define_tool(name=n, description="d", input=Nothing, run=_run) for n in names]

    if not _acceptable(base):
        return  # the profile itself is refused (the property above)
    profile = define_agent_profile(name="p", model="fake/p", tools=tools(base))
    if not _acceptable(base + own):
        assert not _verdict(lambda: AgentConfig(profile=profile, tools=tools(own)))
        return
    config = AgentConfig(profile=profile, tools=tools(own))
    assert [tool.name for tool in config.tools] == base + own
    assert config.model == "fake/p"
