"""What makes a deployment: its id changes with the code and configuration, never with secrets.
(No Ray here: a deployment is computed before any host exists.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from flue_actors._runtime.ray.deployment import (
    Deployment,
    host_database_url,
    settings_of,
    strip_password,
)

STORE = "sqlite:////data/flue.db"
ENV = {"FLUE_MODEL": "fake/echo", "PATH": "/bin"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    workflows = tmp_path / "workflows"
    (workflows / "helpers").mkdir(parents=True)
    (workflows / "summarize.py").write_text("VERSION = 1\n")
    (workflows / "helpers" / "prompts.md").write_text("Summarize.\n")
    return workflows


def _of(folder: Path, *, store: str = STORE, env: dict[str, str] = ENV) -> Deployment:
    return Deployment.of(folder, database_url=store, model=env.get("FLUE_MODEL"), environ=env)


def test_the_same_code_and_configuration_is_the_same_deployment(folder: Path) -> None:
    first = _of(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "summarize.cpython-311.pyc").write_bytes(b"\0bytecode")
    (folder / ".summarize.py.swp").write_bytes(b"\0editor")

    assert _of(folder) == first
    assert first.id.startswith(first.lineage + "-")


@pytest.mark.parametrize(
    "change",
    [
        lambda folder: (folder / "summarize.py").write_text("VERSION = 2\n"),
        lambda folder: (folder / "helpers" / "prompts.md").write_text("Summarize briefly.\n"),
        lambda folder: (folder / "extract.py").write_text("\n"),
        lambda folder: (folder / "summarize.py").rename(folder / "summary.py"),
    ],
    ids=["edited", "edited-resource", "added", "renamed"],
)
def test_changed_code_is_a_new_deployment_of_the_same_lineage(folder: Path, change: object) -> None:
    before = _of(folder)
    change(folder)  # type: ignore[operator]
    after = _of(folder)

    assert after.id != before.id
    assert after.lineage == before.lineage  # same store and folder: it replaces the old one


def test_configuration_that_changes_behaviour_is_a_new_deployment(folder: Path) -> None:
    base = _of(folder)

    assert _of(folder, env={**ENV, "FLUE_MODEL": "anthropic/claude-haiku-4-5"}).id != base.id
    assert _of(folder, env={**ENV, "FLUE_SWEEP_SECONDS": "5"}).id != base.id
    other_store = _of(folder, store="sqlite:////data/other.db")
    assert other_store.lineage != base.lineage


def test_secrets_and_where_the_cluster_is_are_not_part_of_it(folder: Path) -> None:
    base = _of(folder, store="postgresql://flue:pw-first-9f3@db/flue")
    env = {
        **ENV,
        "ANTHROPIC_API_KEY": "sk-ant-k7q2",
        "FLUE_API_TOKEN": "tok-k7q2",
        "FLUE_DATABASE_URL": "postgresql://flue:pw-first-9f3@db/flue",
        "FLUE_TEST_POSTGRES_URL": "postgresql://flue:pw-first-9f3@db/test",
        "FLUE_RAY_ADDRESS": "10.0.0.1:6379",
    }
    same = _of(folder, store="postgresql://flue:rotated@db/flue", env=env)

    assert same.id == base.id  # a rotated password or a new API key needs no new hosts
    assert same.database_url == "postgresql://flue@db/flue"
    assert same.settings == {"FLUE_MODEL": "fake/echo"}
    assert "k7q2" not in repr(same)
    assert "pw-first-9f3" not in repr(same)


def test_passwords_are_stripped_and_completed_from_the_node() -> None:
    url = "postgresql://flue:pw@db:5432/flue?schema=s&sslpassword=x&sslmode=require"
    bare = strip_password(url)

    assert bare == "postgresql://flue@db:5432/flue?schema=s&sslmode=require"
    assert strip_password(STORE) == STORE
    assert host_database_url(bare, {"FLUE_DATABASE_URL": url}) == url
    # A node configured for another database does not lend it its password.
    other = {"FLUE_DATABASE_URL": "postgresql://flue:pw@elsewhere/flue"}
    assert host_database_url(bare, other) == bare
    assert host_database_url(bare, {}) == bare  # then PGPASSWORD or ~/.pgpass supply it


def test_settings_are_the_non_secret_flue_variables() -> None:
    env = {"FLUE_MODEL": "m", "FLUE_SECRET_THING": "s", "FLUE_X": "1", "HOME": "/root"}

    assert settings_of(env) == {"FLUE_MODEL": "m", "FLUE_X": "1"}


def test_hosts_list_prints_one_line_per_host() -> None:
    from flue_actors._cli.hosts import host_table
    from flue_actors._runtime.ray.fleet import HostView

    serving = HostView(
        "flue-host-1be04a07-44a121a42fb1-93dec9c4b5a4-0",
        "1be04a07-44a121a42fb1",
        "93dec9c4b5a4e0f1",
        4242,
        3,
        "serving",
        False,
    )
    lost = HostView("flue-run-run_01X", None, None, None, None, "unreachable", True)

    lines = host_table([serving, lost]).splitlines()

    assert lines[0].split() == ["NAME", "DEPLOYMENT", "NODE", "PID", "RUNS", "STATE"]
    assert lines[1].split() == [
        serving.name,
        serving.deployment,
        "93dec9c4b5a4",
        "4242",
        "3",
        "serving",
    ]
    assert lines[2].split() == [lost.name, "-", "-", "-", "-", "unreachable"]


def test_model_batches_are_part_of_the_deployment(folder: Path) -> None:
    from flue_actors.models import ModelBatches

    async def no_wait(_seconds: float) -> None:
        return None

    plain = _of(folder)
    batched = Deployment.of(
        folder,
        database_url=STORE,
        model=ENV["FLUE_MODEL"],
        environ=ENV,
        model_batches=ModelBatches(window=5.0),
    )
    other_window = Deployment.of(
        folder,
        database_url=STORE,
        model=ENV["FLUE_MODEL"],
        environ=ENV,
        model_batches=ModelBatches(window=60.0),
    )
    same_but_for_the_sleep = Deployment.of(
        folder,
        database_url=STORE,
        model=ENV["FLUE_MODEL"],
        environ=ENV,
        model_batches=ModelBatches(window=5.0, sleep=no_wait),
    )

    assert len({plain.id, batched.id, other_window.id}) == 3
    assert batched.lineage == plain.lineage  # a serve with batches replaces one without
    assert same_but_for_the_sleep.id == batched.id
    assert plain.batch_collector is None
    assert batched.batch_collector == batched.id
    assert batched.model_batches == ModelBatches(window=5.0)
    assert same_but_for_the_sleep.model_batches is not None
    assert same_but_for_the_sleep.model_batches.sleep is None  # hosts wait for real


def test_rate_limits_are_part_of_the_deployment(folder: Path) -> None:
    from flue_actors.models import RateLimits

    def limited(limits: RateLimits) -> Deployment:
        return Deployment.of(
            folder, database_url=STORE, model=ENV["FLUE_MODEL"], environ=ENV, rate_limits=limits
        )

    plain = _of(folder)
    slow, fast = limited(RateLimits(60)), limited(RateLimits(6000))
    assert len({plain.id, slow.id, fast.id}) == 3  # each has its hosts, and its own budget
    assert limited(RateLimits(60)).id == slow.id
    assert slow.lineage == plain.lineage
    assert plain.rate_limiter is None
    assert slow.rate_limiter == slow.id
