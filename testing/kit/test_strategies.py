"""The kit's hypothesis strategies, used the way a workflow's tests would use them."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow
from flue_actors._jsonvalue import UNSET, dumps, loads, snapshot
from flue_actors.testing import FakeModel, FlueTestKit
from flue_actors.testing._strategies import inputs_for, json_values
from workflows.summarize import summarize


class Order(BaseModel):
    sku: str
    quantity: int
    gift: bool = False


@define_workflow(agent=define_agent(model="fake/echo"))
async def count(ctx: ActionContext[Order]) -> dict[str, int]:
    return {"items": ctx.input.quantity}


@define_workflow(agent=define_agent(model="fake/echo"))
async def no_input(ctx: ActionContext[None]) -> None:
    return None


@given(inputs_for(count))
def test_generated_inputs_pass_the_workflows_own_validation(value: object) -> None:
    assert count.action.parse_input(value) == Order.model_validate(value)  # type: ignore[arg-type]


@given(json_values())
def test_json_values_round_trip_and_are_plain_json(value: object) -> None:
    assert snapshot(value) == value
    assert loads(dumps(value)) == value


@given(inputs_for(no_input))
def test_a_workflow_without_input_takes_none(value: object) -> None:
    assert value is UNSET


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_summarize_completes_for_any_valid_input(data: st.DataObject) -> None:
    value = data.draw(inputs_for(summarize))
    kit = FlueTestKit(FakeModel())
    kit.fake_model.respond_with(lambda request: "a summary")
    try:
        run = kit.run(summarize, value)
    finally:
        kit.close()
    assert run.status == "completed", run.error
    assert run.result == {"summary": "a summary"}
