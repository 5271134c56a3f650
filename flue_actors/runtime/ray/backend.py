"""RayBackend: admitted runs execute in RunHosts spread over a Ray cluster's nodes.

One Ray call per run hands the admitted run to its host (placement hashes the run id over the
hosts, so any driver places a run the same way); the host drives it to its end and writes to the
store directly. Hosts are named, detached and restartable, so the process that admitted a run
(a gateway) can die without stopping it. A run whose host dies is ended at once when the call
fails with the actor's death, and in any case by the Runtime's lease sweep or the host's restart.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from ...events import RunAdmittedEvent
from ...store import is_sqlite_url
from ..recovery import end_interrupted_run
from ..services import RunServices
from .environment import NAMESPACE, connect
from .host import HostConfig, RunHost

__all__ = ["RayBackend", "check_store_for_cluster"]

logger = logging.getLogger("flue_actors.ray")
_HOST_PREFIX = "flue-host-"
_RUN_PREFIX = "flue-run-"


def check_store_for_cluster(database_url: str, nodes: list[dict[str, Any]]) -> None:
    """Refuse a SQLite store on a cluster whose nodes are on more than one machine."""
    machines = {node["NodeManagerAddress"] for node in nodes}
    if len(machines) > 1 and is_sqlite_url(database_url):
        raise ValueError(
            f"This Ray cluster spans {len(machines)} machines, and a SQLite file cannot be "
            "shared between them: set FLUE_DATABASE_URL=postgresql://... (the same URL on every "
            "node) to use the PostgreSQL store."
        )


class RayBackend:
    """``address``: a cluster to attach to (``"auto"`` for the one ``ray start`` made here), or
    ``None`` for a private local instance that ends with this process."""

    def __init__(
        self,
        services: RunServices,
        *,
        database_url: str,
        address: str | None = None,
        model: str | None = None,
        hosts_per_node: int = 1,
        num_cpus: int | None = None,
    ) -> None:
        directory = services.workflows.directory
        if directory is None:
            raise ValueError(
                "The Ray backend needs workflows discovered from a folder (every host loads "
                "them from it): pass the folder, not definitions."
            )
        self._services = services
        self._ray = ray = connect(address, num_cpus=num_cpus)
        nodes = [node for node in ray.nodes() if node["Alive"]]
        check_store_for_cluster(database_url, nodes)
        self._config = HostConfig(
            owner="",
            database_url=database_url,
            workflows_dir=str(directory),
            model=model,
            env=dict(services.env),
        )
        self._host_class: Any = ray.remote(RunHost)
        self._hosts = self._start_hosts(nodes, hosts_per_node)
        self._names = sorted(self._hosts)
        self._pending: dict[str, asyncio.Task[None]] = {}

    def _start_hosts(self, nodes: list[dict[str, Any]], per_node: int) -> dict[str, Any]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # Deployments (a store and a workflow folder) sharing a cluster get hosts of their own.
        identity = f"{self._config.database_url}|{self._config.workflows_dir}"
        deployment = f"{zlib.crc32(identity.encode()):08x}"
        hosts: dict[str, Any] = {}
        for node in nodes:
            for index in range(per_node):
                name = f"{_HOST_PREFIX}{deployment}-{node['NodeID'][:12]}-{index}"
                config = HostConfig(**{**self._config.__dict__, "owner": name})
                hosts[name] = self._host_class.options(
                    name=name,
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    lifetime="detached",
                    max_restarts=-1,
                    max_task_retries=0,
                    max_concurrency=100_000,
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(config)
        # Every host open (store, workflows, recovery of its past life) before runs arrive.
        self._ray.get([host.ready.remote() for host in hosts.values()])
        return hosts

    @property
    def host_names(self) -> list[str]:
        return list(self._names)

    def _placement(self, workflow: str) -> Any:
        return self._services.workflows.get(workflow).definition.placement

    def owner_for(self, run_id: str, workflow: str) -> str:
        if self._placement(workflow).isolation == "process":
            return _RUN_PREFIX + run_id
        return self._names[zlib.crc32(run_id.encode("ascii")) % len(self._names)]

    async def start(self, header: RunAdmittedEvent) -> None:
        run_id = header["runId"]
        owner = self.owner_for(run_id, header["workflowName"])
        if owner.startswith(_RUN_PREFIX):
            placement = self._placement(header["workflowName"])
            config = HostConfig(**{**self._config.__dict__, "owner": owner, "dedicated": True})
            host = self._host_class.options(
                name=owner,
                namespace=NAMESPACE,
                lifetime="detached",
                max_restarts=0,
                max_task_retries=0,
                **placement.actor_options(),
            ).remote(config)
        else:
            host = self._hosts[owner]
        reference = host.run.remote(header)
        self._pending[run_id] = asyncio.ensure_future(self._settle(run_id, reference))

    async def _settle(self, run_id: str, reference: Any) -> None:
        from ray.exceptions import ActorDiedError

        try:
            await reference
        except ActorDiedError:
            # The host died under the run: it is certainly not running any more.
            services = self._services
            if await end_interrupted_run(services.store, run_id, services.clock):
                logger.warning("run %s: its host died; the run has been ended", run_id)
        except Exception as error:  # the lease sweep remains the backstop
            logger.warning("run %s: its host did not answer: %s", run_id, error)
        finally:
            self._pending.pop(run_id, None)

    async def join(self, run_id: str) -> bool:
        pending = self._pending.get(run_id)
        if pending is None:
            return False
        await asyncio.wait({pending})
        return True

    async def cancel(self, run_id: str, reason: str) -> bool:
        owner = await self._services.store.owner_of(run_id)
        if owner is None:
            return False
        try:
            actor = self._ray.get_actor(owner, namespace=NAMESPACE)
        except ValueError:
            return False
        cancelled: bool = await actor.cancel.remote(run_id, reason)
        return cancelled

    async def close(self, *, grace_seconds: float | None = None) -> None:
        """Hosts are left running: runs already admitted go on (the lease sweep is the
        Runtime's, see ``LeaseSupervisor``)."""

    def shutdown_hosts(self) -> None:
        """End this backend's host processes (their runs end with them)."""
        for host in self._hosts.values():
            self._ray.kill(host, no_restart=True)
