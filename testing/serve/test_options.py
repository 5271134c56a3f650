"""``flue-actors serve`` refuses settings that cannot work before it listens."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli.conftest import describe

from .conftest import serve_project


def test_a_lease_shorter_than_three_heartbeats_is_refused(tmp_path: Path) -> None:
    result = serve_project(tmp_path).run("serve", "--lease-seconds", "1")
    assert result.returncode == 1, describe(result)
    assert "lease_seconds must be at least 3" in result.stderr


@pytest.mark.parametrize(
    ("options", "url", "refusal"),
    [
        (["--workers", "0"], None, "--workers: must be positive"),
        (["--workers", "2", "--backend", "ray"], None, "--workers needs the local backend"),
        (["--workers", "2", "--address", "127.0.0.1:6379"], None, "needs the local backend"),
        (["--workers", "2"], "sqlite://:memory:", "an in-memory SQLite store is private"),
    ],
)
def test_workers_that_cannot_share_the_work_are_refused(
    tmp_path: Path, options: list[str], url: str | None, refusal: str
) -> None:
    result = serve_project(tmp_path, url).run("serve", *options)
    assert result.returncode == 2, describe(result)
    assert refusal in result.stderr, describe(result)
