"""Flue's own TypeScript client (@flue/sdk 1.0.0-beta.9, the workflow-era release) against the
gateway on a real uvicorn server: the wire is Flue's, so the SDK works unchanged.

`.ci/run` installs the SDK (`npm install --prefix testing/compat`). Without node or the SDK the
test is skipped locally; under CI it fails instead, so a missing install cannot pass silently.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from flue_actors import Runtime
from flue_actors.gateway import create_app
from flue_actors.models import ModelRegistry

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SDK = HERE / "node_modules" / "@flue" / "sdk"


def _require_sdk() -> str:
    node = shutil.which("node")
    if node is not None and SDK.is_dir():
        return node
    reason = "node is not installed" if node is None else "@flue/sdk is not installed"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run must install it (npm install --prefix testing/compat)")
    pytest.skip(f"{reason} (npm install --prefix testing/compat)")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[str]:
    runtime = Runtime(
        ROOT / "workflows",
        store=f"sqlite:///{tmp_path / 'flue.db'}",
        models=ModelRegistry(override="fake/echo"),
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 10
    while not server.started:  # uvicorn offers no event to await
        assert not serving.done(), "uvicorn stopped before it started"
        assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start in 10 s"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        await runtime.close()


async def test_flues_own_sdk_works_against_the_gateway(gateway: str) -> None:
    node = _require_sdk()
    child = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "sdk_check.mjs"),
        gateway,
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, stderr.decode()
    seen: dict[str, Any] = json.loads(stdout)

    lifecycle = [
        "run_start",
        "operation_start",
        "agent_start",
        "turn_start",
        "message_start",
        "message_end",
        "message_start",
        "text_delta",
        "turn",
        "message_end",
        "turn_messages",
        "agent_end",
        "operation",
        "idle",
        "run_end",
    ]
    assert seen["admitted"]["runId"].startswith("run_")
    assert seen["waited"]["result"] == {"summary": "waited"}
    record = seen["record"]
    assert record["runId"] == seen["waited"]["runId"]
    assert record["status"] == "completed"
    assert record["input"] == {"text": "waited"}
    assert record["result"] == {"summary": "waited"}
    assert seen["eventTypes"] == lifecycle
    assert seen["eventIndexes"] == list(range(len(lifecycle)))
    assert seen["tail"] == ["idle", "run_end"]
    assert seen["stream_longpoll"] == lifecycle  # live long-poll until Stream-Closed
    assert seen["stream_sse"] == lifecycle  # live SSE until the closed control frame
    assert seen["run"]["result"] == {"summary": "run to the end"}  # workflows.run settles
    assert seen["unknownWorkflow"] == {
        "isFlueApiError": True,
        "status": 404,
        "type": "workflow_not_found",
    }
    assert seen["badInput"]["status"] == 422
    assert seen["badInput"]["type"] == "action_input_validation"
    assert seen["unknownRun"]["status"] == 404
    assert seen["unknownRun"]["type"] == "run_not_found"
