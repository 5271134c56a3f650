"""A run hosted on Ray is traced in its host: the trace context it was admitted with travels
with the run, so its span there is a child of the caller's span. The workflow module installs
the OpenTelemetry instrumentation when a host loads it, exporting spans to a file per trace."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from flue_actors import RayCluster, Runtime

pytestmark = pytest.mark.ray

TRACED: Final = '''\
"""Traced where it runs: the instrumentation is installed when a process loads this module."""

import json
import os
import tempfile
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from flue_actors import ActionContext, define_agent, define_workflow
from flue_actors.otel import install_opentelemetry


class FileExporter(SpanExporter):
    """One JSON line per span, in a file named after its trace."""

    def export(self, spans):
        for span in spans:
            trace_id = format(span.context.trace_id, "032x")
            path = Path(tempfile.gettempdir()) / f"flue-spans-{trace_id}.jsonl"
            line = {
                "name": span.name,
                "spanId": format(span.context.span_id, "016x"),
                "parentId": format(span.parent.span_id, "016x") if span.parent else None,
                "pid": os.getpid(),
            }
            with path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(line) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
install_opentelemetry(tracer_provider=provider)


@define_workflow(agent=define_agent(model="fake/echo"))
async def traced(ctx: ActionContext[None]) -> dict[str, int]:
    session = await ctx.harness.session()
    await session.prompt("hello")
    return {"pid": os.getpid()}
'''


@pytest.fixture
async def traced_runtime(ray_cluster: Any, project: Path) -> AsyncIterator[Runtime]:
    (project / "workflows" / "traced.py").write_text(TRACED, encoding="utf-8")
    runtime = Runtime(
        project / "workflows", store=f"sqlite:///{project / 'flue.db'}", backend=RayCluster()
    )
    try:
        yield runtime
    finally:
        await runtime.close()
        runtime.backend.shutdown_hosts()  # type: ignore[attr-defined]


async def test_the_span_context_travels_with_a_run_to_its_host(traced_runtime: Runtime) -> None:
    ray_runtime = traced_runtime
    trace_id = os.urandom(16).hex()
    parent = os.urandom(8).hex()
    spans_file = Path(tempfile.gettempdir()) / f"flue-spans-{trace_id}.jsonl"
    try:
        receipt = await ray_runtime.invoke(
            "traced", trace_carrier={"traceparent": f"00-{trace_id}-{parent}-01"}
        )
        record = await ray_runtime.wait(receipt.run_id, timeout=60)
        assert record.status == "completed", record.error
        assert isinstance(record.result, dict)
        assert record.result["pid"] != os.getpid()  # it ran in a host
        spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    finally:
        spans_file.unlink(missing_ok=True)
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"invoke_workflow traced", "invoke_agent", "chat echo"}
    assert by_name["invoke_workflow traced"]["parentId"] == parent
    assert by_name["invoke_agent"]["parentId"] == by_name["invoke_workflow traced"]["spanId"]
    assert by_name["chat echo"]["parentId"] == by_name["invoke_agent"]["spanId"]
    assert {span["pid"] for span in spans} == {record.result["pid"]}
