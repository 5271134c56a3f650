"""Running one shell command in the sandbox and recording it as a ``bash`` tool call.

Only the command text and the exit code are recorded: the values of ``env`` (often secrets)
never reach an event, and neither do the argument values of the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..events import error_payload
from .sandbox import Sandbox, ShellResult
from .sink import EventSink

__all__ = ["run_shell"]


async def run_shell(
    sandbox: Sandbox,
    command: str,
    *,
    call_id: str,
    correlation: Mapping[str, Any],
    sink: EventSink,
    clock: Clock,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
) -> ShellResult:
    if not isinstance(command, str):
        raise TypeError("shell command must be a string")
    if env is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise TypeError("shell env must map strings to strings")
    started = clock.now_ms()
    ids = {"toolName": "bash", "toolCallId": call_id}
    sink.emit("tool_start", {**ids, **correlation})

    def finish(text: str, exit_code: int) -> None:
        sink.emit(
            "tool",
            {
                **ids,
                "isError": exit_code != 0,
                "result": {
                    "content": [{"type": "text", "text": text}],
                    "details": {"command": command, "exitCode": exit_code},
                },
                "durationMs": clock.now_ms() - started,
                **correlation,
            },
        )

    try:
        result = await sandbox.run(command, cwd=cwd, env=env, timeout=timeout)
    except BaseException as error:  # recorded, then the caller sees the error itself
        failure = error_payload(error)
        finish(f"{failure['name']}: {failure['message']}", -1)
        raise
    finish(result.stdout + result.stderr, result.exit_code)
    return result
