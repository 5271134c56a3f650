"""RayBackend: admitted runs execute in RunHosts spread over a Ray cluster's nodes.

One Ray call per run hands the admitted run to its host (placement hashes the run id over the
hosts, so any driver places a run the same way); the host drives it to its end and writes to the
store directly. Hosts are named, detached and restartable, so the process that admitted a run
(a gateway) can die without stopping it. A run whose host dies is ended at once when the call
fails with the actor's death, and in any case by the Runtime's lease sweep or the host's restart.

Hosts belong to a deployment (``deployment.py``): they are named after its id, so serves of the
same code and configuration share them, and a serve of a new one starts hosts of its own, marks
itself current and tells the previous deployment's hosts to drain.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any

from ...events import RunAdmittedEvent
from ...store import is_sqlite_url
from ..recovery import end_interrupted_run
from ..services import RunServices
from .deployment import Deployment, HostDrainingError, current_deployment, mark_current
from .environment import NAMESPACE, connect
from .host import HostConfig, RunHost

__all__ = ["HOST_PREFIX", "RUN_PREFIX", "RayBackend", "check_store_for_cluster"]

logger = logging.getLogger("flue_actors.ray")
HOST_PREFIX = "flue-host-"
RUN_PREFIX = "flue-run-"
# How long a serve waits for a retiring host of its own deployment to give up its name.
_PLACE_SECONDS = 30.0


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
        self._deployment = Deployment.of(
            directory, database_url=database_url, model=model, environ=services.env
        )
        self._host_class: Any = ray.remote(RunHost)
        self._nodes = {node["NodeID"]: node for node in nodes}
        current = current_deployment(self._deployment.lineage)
        generation = 1 if current is None else current[0] + 1
        self._hosts = self._start_hosts(hosts_per_node, generation)
        self._names = sorted(self._hosts)
        mark_current(self._deployment, generation)
        self._retire_superseded()
        self._pending: dict[str, asyncio.Task[None]] = {}

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def _place(self, name: str, node_id: str) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return self._host_class.options(
            name=name,
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=100_000,
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(HostConfig(owner=name, deployment=self._deployment))

    def _start_hosts(self, per_node: int, generation: int) -> dict[str, Any]:
        """This deployment's hosts, open (store, workflows, recovery of a past life) and
        serving before runs arrive: existing ones are reused (and resume if they were
        draining), a host that is exiting is replaced once its name is free."""
        from ray.exceptions import RayActorError, RayTaskError

        wanted = {
            f"{HOST_PREFIX}{self._deployment.id}-{node_id[:12]}-{index}": node_id
            for node_id in self._nodes
            for index in range(per_node)
        }
        hosts = {name: self._place(name, node_id) for name, node_id in wanted.items()}
        deadline = time.monotonic() + _PLACE_SECONDS
        waiting = dict(hosts)
        while True:
            answers = {name: host.ready.remote(True, generation) for name, host in waiting.items()}
            refused = []
            for name, answer in answers.items():
                try:
                    self._ray.get(answer)
                except (RayActorError, RayTaskError) as error:
                    retiring = isinstance(error, HostDrainingError) or isinstance(
                        getattr(error, "cause", None), HostDrainingError
                    )
                    if isinstance(error, RayTaskError) and not retiring:
                        raise
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"host {name} could not be started: {error}") from None
                    refused.append(name)
            if not refused:
                return hosts
            time.sleep(0.2)
            waiting = {name: self._place(name, wanted[name]) for name in refused}
            hosts.update(waiting)

    def _retire_superseded(self) -> None:
        """Tell the hosts of this lineage's other deployments to drain now (they would also
        notice on their own, within a second, that this deployment is current; so does one
        that restarts later)."""
        lineage = f"{HOST_PREFIX}{self._deployment.lineage}-"
        for actor in self._ray.util.list_named_actors(all_namespaces=True):
            name = actor["name"]
            if actor["namespace"] != NAMESPACE or not name.startswith(lineage):
                continue
            if name in self._hosts:
                continue
            try:
                self._ray.get_actor(name, namespace=NAMESPACE).drain.remote()
            except ValueError:
                continue  # gone meanwhile
            logger.warning("host %s belongs to a superseded deployment: draining it", name)

    @property
    def host_names(self) -> list[str]:
        return list(self._names)

    def _placement(self, workflow: str) -> Any:
        return self._services.workflows.get(workflow).definition.placement

    def owner_for(self, run_id: str, workflow: str) -> str:
        if self._placement(workflow).isolation == "process":
            return RUN_PREFIX + run_id
        return self._names[zlib.crc32(run_id.encode("ascii")) % len(self._names)]

    async def start(self, header: RunAdmittedEvent) -> None:
        run_id = header["runId"]
        owner = self.owner_for(run_id, header["workflowName"])
        if owner.startswith(RUN_PREFIX):
            placement = self._placement(header["workflowName"])
            config = HostConfig(owner=owner, deployment=self._deployment, dedicated=True)
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
