"""``flue-actors serve`` refuses settings that cannot work before it listens."""

from __future__ import annotations

from pathlib import Path

from cli.conftest import describe

from .conftest import serve_project


def test_a_lease_shorter_than_three_heartbeats_is_refused(tmp_path: Path) -> None:
    result = serve_project(tmp_path).run("serve", "--lease-seconds", "1")
    assert result.returncode == 1, describe(result)
    assert "lease_seconds must be at least 3" in result.stderr
