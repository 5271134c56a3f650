"""A Runtime is given its backend, or a factory it calls with what it made; it knows no Ray
options itself. The Ray factory refuses what its hosts could not use before touching Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flue_actors import (
    ActionContext,
    Runtime,
    SqliteEventStore,
    define_agent,
    define_workflow,
)
from flue_actors._clock import StepClock
from flue_actors._ids import SequentialIds
from flue_actors._runtime import LocalBackend, RunBackend, RunServices
from flue_actors._runtime.lease import HEARTBEAT_SECONDS
from flue_actors.models import ModelRegistry


@define_workflow(agent=define_agent(model="fake/echo"))
async def double(ctx: ActionContext[None]) -> int:
    return 2 * 21


class RecordingFactory:
    """Builds the local backend, and remembers what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[RunServices, str | None, bool]] = []
        self.built: list[LocalBackend] = []

    def __call__(
        self, services: RunServices, *, database_url: str | None, models_given: bool
    ) -> RunBackend:
        self.calls.append((services, database_url, models_given))
        backend = LocalBackend(services)
        self.built.append(backend)
        return backend


async def test_a_factory_is_called_once_with_the_runtimes_services_and_its_backend_runs(
    tmp_path: Path,
) -> None:
    factory = RecordingFactory()
    url = f"sqlite:///{tmp_path / 'flue.db'}"
    async with Runtime(
        {"double": double}, store=url, backend=factory, clock=StepClock(), ids=SequentialIds()
    ) as runtime:
        [(services, database_url, models_given)] = factory.calls
        assert services is runtime.services
        assert services.store is runtime.store
        assert database_url == url == runtime.database_url
        assert models_given is False
        assert runtime.backend is factory.built[0]

        record = await runtime.run("double")
        assert (record.status, record.result) == ("completed", 42)


async def test_a_factory_learns_of_a_store_object_and_a_model_registry() -> None:
    factory = RecordingFactory()
    async with Runtime(
        {"double": double}, store=SqliteEventStore(), backend=factory, models=ModelRegistry()
    ):
        [(_, database_url, models_given)] = factory.calls
        assert database_url is None
        assert models_given is True


async def test_a_backend_object_is_used_as_given_and_the_default_is_local() -> None:
    store = SqliteEventStore()
    services = RunServices(
        store=store,
        workflows=Runtime({"double": double}, store=store).workflows,
        models=ModelRegistry(),
        clock=StepClock(),
        ids=SequentialIds(),
        env={},
    )
    given = LocalBackend(services)
    async with Runtime({"double": double}, store=store, backend=given) as runtime:
        assert runtime.backend is given
    async with Runtime({"double": double}, store=SqliteEventStore()) as runtime:
        assert isinstance(runtime.backend, LocalBackend)


def test_runtime_takes_no_ray_options() -> None:
    with pytest.raises(TypeError, match="address"):
        Runtime({"double": double}, store=SqliteEventStore(), address="auto")  # type: ignore[call-arg]


async def test_the_ray_factory_needs_a_store_url_and_no_model_registry(tmp_path: Path) -> None:
    from flue_actors import RayCluster

    store = SqliteEventStore()
    with pytest.raises(ValueError, match="URL that every host can open"):
        Runtime({"double": double}, store=store, backend=RayCluster("auto"))
    await store.close()
    with pytest.raises(ValueError, match="FLUE_MODEL, not a registry"):
        Runtime(
            {"double": double},
            store=f"sqlite:///{tmp_path / 'flue.db'}",
            backend=RayCluster("auto"),
            models=ModelRegistry(),
        )
    assert RayCluster() == RayCluster(address=None, hosts_per_node=1, num_cpus=None)


@define_workflow(agent=define_agent(model="fake/echo"), recovery="fail")
async def blocked(ctx: ActionContext[None]) -> None:
    await asyncio.Event().wait()


async def test_a_run_ended_by_another_process_stops_where_it_is_hosted(tmp_path: Path) -> None:
    """Another process (a worker of ``serve --workers``) cancels a run hosted here through the
    store; the run writes nothing that would reveal it: it is found by the backend's check of
    its hosted runs, and stopped, rather than blocking until its end for nobody."""
    url = f"sqlite:///{tmp_path / 'flue.db'}"

    def watching(services: RunServices, **_: object) -> LocalBackend:
        return LocalBackend(services, watch_ended_elsewhere=True)  # as serve --workers has it

    owner = Runtime({"blocked": blocked}, store=url, backend=watching)
    try:
        async with Runtime({"blocked": blocked}, store=url) as other:
            receipt = await owner.invoke("blocked")
            backend = owner.backend
            assert isinstance(backend, LocalBackend)
            assert await other.cancel(receipt.run_id, "Cancelled elsewhere.")
            # Hosted for a whole interval, then read: gone within three heartbeats.
            await asyncio.wait_for(backend.join(receipt.run_id), 3 * HEARTBEAT_SECONDS + 2)
            assert backend.active == 0
            record = await owner.get_run(receipt.run_id)
            assert record is not None
            assert record.error is not None
            assert record.error["type"] == "run_cancelled"
    finally:
        await owner.close(grace_seconds=0)  # a run still hosted is not waited for
