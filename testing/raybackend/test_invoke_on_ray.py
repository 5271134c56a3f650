"""A run hosted on Ray invokes another workflow (``ctx.invoke``): the host's own runtime admits
the new run, which runs in the same host, and the invoking run records it in its log."""

from __future__ import annotations

import os

import pytest

from flue_actors import Runtime
from flue_actors._runtime.ambient import INVOKED_MESSAGE

pytestmark = pytest.mark.ray


async def test_a_hosted_run_invokes_a_workflow_that_runs_in_its_host(
    ray_runtime: Runtime,
) -> None:
    record = await ray_runtime.run("invoker", timeout=60)
    assert record.status == "completed", record.error
    assert isinstance(record.result, dict)
    child_id = record.result["child"]
    assert isinstance(child_id, str)
    assert record.result["pid"] != os.getpid()
    child_result = record.result["childResult"]
    assert isinstance(child_result, dict)
    assert child_result["pid"] == record.result["pid"]  # it ran beside its invoker
    child = await ray_runtime.get_run(child_id)
    assert child is not None
    assert (child.workflow_name, child.status) == ("sleeper", "completed")
    assert await ray_runtime.store.owner_of(child_id) == await ray_runtime.store.owner_of(
        record.run_id
    )
    logged = [
        event["attributes"]
        for event in await ray_runtime.events(record.run_id)
        if event["type"] == "log" and event["message"] == INVOKED_MESSAGE
    ]
    assert logged == [{"runId": child_id, "workflowName": "sleeper"}]
