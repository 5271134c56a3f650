"""Running one shell command in the sandbox and recording it as a ``bash`` tool call.

Only the command text and the exit code are recorded: the values of ``env`` (often secrets)
never reach an event, and neither do the argument values of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._clock import Clock
from .._events import error_payload
from ..sandbox import Sandbox, ShellResult
from .replay import replay_of
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

    def finish(text: str, exit_code: int, stderr: str = "") -> None:
        details: dict[str, Any] = {"command": command, "exitCode": exit_code}
        if stderr:
            # The text is stdout then stderr; a replay splits it back (see below).
            details["stderr"] = stderr
        sink.emit(
            "tool",
            {
                **ids,
                "isError": exit_code != 0,
                "result": {"content": [{"type": "text", "text": text}], "details": details},
                "durationMs": clock.now_ms() - started,
                **correlation,
            },
        )

    replay = replay_of(sink)
    if replay is not None:
        recorded = replay.answer(
            "tool",
            f"tool bash {command!r} toolCallId={call_id}",
            lambda event: (
                event.get("toolCallId") == call_id
                and ((event.get("result") or {}).get("details") or {}).get("command") == command
            ),
            correlation,
        )
        if recorded is not None:
            return _replayed(recorded, finish)
    try:
        result = await sandbox.run(command, cwd=cwd, env=env, timeout=timeout)
    except BaseException as error:  # recorded, then the caller sees the error itself
        failure = error_payload(error)
        finish(f"{failure['name']}: {failure['message']}", -1)
        raise
    finish(result.stdout + result.stderr, result.exit_code, result.stderr)
    return result


class ReplayedShellError(RuntimeError):
    """A command whose sandbox raised when it first ran: the replay raises it again."""


def _replayed(recorded: dict[str, Any], finish: Callable[[str, int, str], None]) -> ShellResult:
    """A command's result as its ``tool`` event recorded it (the command is not run again)."""
    result = recorded.get("result") or {}
    details = result.get("details") or {}
    content = result.get("content") or [{}]
    text = str(content[0].get("text", ""))
    exit_code = int(details.get("exitCode", 0))
    stderr = str(details.get("stderr", ""))
    finish(text, exit_code, stderr)
    if exit_code == -1:
        raise ReplayedShellError(text)
    return ShellResult(stdout=text[: len(text) - len(stderr)], stderr=stderr, exit_code=exit_code)
