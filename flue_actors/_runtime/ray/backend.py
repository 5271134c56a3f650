"""RayBackend: admitted runs execute in RunHosts spread over a Ray cluster's nodes.

Placement hashes the run id over the hosts, so any driver places a run the same way. Runs
invoked together are handed to their host in one Ray call per host (a batch: what was queued in
the same event-loop turn, at most ``_BATCH``); the host admits them into the store itself, in one
transaction, starts them and answers, and ``invoke`` returns then. So each store file has one
writer per run's life (its host), and the caller holds no call per run: it follows runs through
the log. Hosts are named, detached and restartable, so the process that admitted a run (a
gateway) can die without stopping it. Each host is watched by one long-lived call; when it fails
with the host's death, the host's active runs are ended at once, and in any case by the
Runtime's lease sweep or the host's restart.

A host that dies after its batch's transaction committed but before it answered leaves those
runs admitted: ``invoke`` raises ``WorkflowAdmissionFailedError`` and the Runtime ends each one
that never started; one that had started is ended by the watch (or the lease sweep).

Hosts belong to a deployment (``deployment.py``): they are named after its id, so serves of the
same code and configuration share them, and a serve of a new one starts hosts of its own, marks
itself current and tells the previous deployment's hosts to drain.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Sequence
from typing import Any, TypeAlias

from ..._definitions import Placement
from ..._events import RunAdmittedEvent
from ..._records import RunRecord
from ...models import RateLimits, Usage
from ...models._message_batches import ModelBatches
from ...store import is_sqlite_url
from ..backend import Endings
from ..lease import OwnerLease
from ..recovery import end_interrupted_run, end_orphaned_runs
from ..services import RunServices
from .deployment import Deployment, HostDrainingError, current_deployment, mark_current
from .environment import NAMESPACE, connect
from .host import HostConfig, RunHost

__all__ = ["HOST_PREFIX", "RUN_PREFIX", "RayBackend", "check_store_for_cluster"]

# A run waiting for its host's next batch: its header, its admission's answer, and, when its
# end is awaited, the future of how it ended (see ``RunBackend.admit``).
_Queued: TypeAlias = tuple[
    RunAdmittedEvent, "asyncio.Future[bool]", "asyncio.Future[RunRecord | bool] | None"
]

logger = logging.getLogger("flue_actors.ray")
HOST_PREFIX = "flue-host-"
RUN_PREFIX = "flue-run-"
# How long a serve waits for a retiring host of its own deployment to give up its name.
_PLACE_SECONDS = 30.0
# How often placement looks at which nodes are alive (one call to the cluster's control plane).
_NODES_EVERY_SECONDS = 2.0
# How long a host found restarting keeps its orphaned runs from the other hosts: it resumes
# them itself as it opens (see RayBackend.resume). Past this it is taken to be stuck.
OWNER_RESTART_SECONDS = 60.0
# At most this many runs in one hand-over call to a host.
_BATCH = 256
# After a host's watch call fails: when to call again (a restarting host answers once up).
_WATCH_RETRY_SECONDS = 0.5
_WATCH_RETRY_MAX_SECONDS = 5.0


def check_store_for_cluster(database_url: str, nodes: list[dict[str, Any]]) -> None:
    """Refuse a SQLite store on a cluster whose nodes are on more than one machine."""
    machines = {node["NodeManagerAddress"] for node in nodes}
    if len(machines) > 1 and is_sqlite_url(database_url):
        raise ValueError(
            f"This Ray cluster spans {len(machines)} machines, and a SQLite file cannot be "
            "shared between them: set FLUE_DATABASE_URL=postgresql://... (the same URL on every "
            "node) to use the PostgreSQL store."
        )


def actor_options(placement: Placement) -> dict[str, Any]:
    """The Ray actor options of a run's dedicated host (``isolation="process"``)."""
    options: dict[str, Any] = {"num_cpus": placement.num_cpus or 0}
    if placement.num_gpus is not None:
        options["num_gpus"] = placement.num_gpus
    if placement.memory is not None:
        options["memory"] = placement.memory
    if placement.resources:
        options["resources"] = dict(placement.resources)
    return options


class _RestartGrace:
    """The restarts the lease sweep found hosts in: a host that owns orphans and is restarting
    is left to resume them itself for ``OWNER_RESTART_SECONDS`` from when its restart was
    first seen (see ``RayBackend.resume``)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}  # name -> (first, last) sighting

    def waits_for(self, name: str, now: float) -> bool:
        """A sighting of host ``name`` restarting at ``now``: whether it is still waited for."""
        first, last = self._seen.get(name, (now, now))
        if now - last > OWNER_RESTART_SECONDS:
            first = now  # what was seen before was an earlier restart: this is another one
        self._seen[name] = (first, now)
        return now - first < OWNER_RESTART_SECONDS

    def answered(self, name: str) -> None:
        self._seen.pop(name, None)


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
        model_batches: ModelBatches | None = None,
        hosts_per_node: int = 1,
        num_cpus: int | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        directory = services.workflows.directory
        if directory is None:
            raise ValueError(
                "The Ray backend needs workflows discovered from a folder (every host loads "
                "them from it): pass the folder, not definitions."
            )
        self._services = services
        self._ray = ray = connect(address, num_cpus=num_cpus)
        # A private instance ends with this process, and its hosts with it.
        self._private = address is None
        nodes = [node for node in ray.nodes() if node["Alive"]]
        check_store_for_cluster(database_url, nodes)
        self._deployment = Deployment.of(
            directory,
            database_url=database_url,
            model=model,
            environ=services.env,
            model_batches=model_batches,
            rate_limits=rate_limits,
        )
        self._database_url = database_url
        self._host_class: Any = ray.remote(RunHost)
        self._nodes = {node["NodeID"]: node for node in nodes}
        self._per_node = hosts_per_node
        current = current_deployment(self._deployment.lineage)
        self._generation = 1 if current is None else current[0] + 1
        self._hosts = self._start_hosts(set(self._nodes))
        self._names = sorted(self._hosts)
        mark_current(self._deployment, self._generation)
        self._retire_superseded()
        # Runs waiting for the next batch to their host (by host, the meter of the batch
        # invocation they belong to, if any, and whether their ends are awaited), the batches
        # being handed over, and those admitted whose ends are being reported (``_follow``).
        self._queued: dict[tuple[str, str | None, bool], list[_Queued]] = {}
        self._flush_scheduled = False
        self._handing_over: set[asyncio.Task[None]] = set()
        self._following: set[asyncio.Task[None]] = set()
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._watching_all = False
        # Dedicated actors' runs, each awaited until it ends (see _admit_dedicated).
        self._pending: dict[str, asyncio.Task[None]] = {}
        # Leases this process keeps for dedicated actors until their run settles (see start).
        self._starting: dict[str, OwnerLease] = {}
        self._nodes_checked = time.monotonic()
        self._joining: asyncio.Task[None] | None = None
        self._restarts = _RestartGrace()

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

    def _host_name(self, node_id: str, index: int) -> str:
        return f"{HOST_PREFIX}{self._deployment.id}-{node_id[:12]}-{index}"

    def _start_hosts(self, node_ids: set[str]) -> dict[str, Any]:
        """This deployment's hosts, open (store, workflows, recovery of a past life) and
        serving before runs arrive: existing ones are reused (and resume if they were
        draining), a host that is exiting is replaced once its name is free."""
        from ray.exceptions import RayActorError, RayTaskError

        generation = self._generation
        wanted = {
            self._host_name(node_id, index): node_id
            for node_id in node_ids
            for index in range(self._per_node)
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

    def _placement(self, workflow: str) -> Placement:
        return self._services.workflows.get(workflow).definition.placement

    def owner_for(self, run_id: str, workflow: str) -> str:
        if self._placement(workflow).isolation == "process":
            return RUN_PREFIX + run_id
        self._follow_nodes()
        return self._names[zlib.crc32(run_id.encode("ascii")) % len(self._names)]

    def _follow_nodes(self) -> None:
        """Place runs only on hosts whose node is alive, and give nodes that joined since the
        last look hosts of their own (at most every ``_NODES_EVERY_SECONDS``; one GCS call).

        A host's node that dies takes the host with it for good (hosts are pinned to their
        node), and Ray reports the host as restarting rather than dead, so without this every
        run hashed to it would be admitted and then ended by the lease sweep."""
        now = time.monotonic()
        if now - self._nodes_checked < _NODES_EVERY_SECONDS:
            return
        self._nodes_checked = now
        alive = {node["NodeID"]: node for node in self._ray.nodes() if node["Alive"]}
        live = sorted(name for name, node_id in self._host_nodes.items() if node_id in alive)
        if live and live != self._names:
            gone = sorted(set(self._names) - set(live))
            if gone:
                logger.warning("hosts %s are on nodes that died: no new runs go there", gone)
            self._names = live
        joined = {node_id for node_id in alive if node_id not in self._nodes}
        if joined and (self._joining is None or self._joining.done()):
            self._joining = asyncio.get_running_loop().create_task(self._join_nodes(alive, joined))

    async def _join_nodes(self, alive: dict[str, dict[str, Any]], joined: set[str]) -> None:
        try:
            check_store_for_cluster(self._database_url, list(alive.values()))
            # Starting a host waits for it to open (seconds): not in the serving loop.
            hosts = await asyncio.to_thread(self._start_hosts, joined)
        except Exception as error:
            logger.error("nodes %s joined, but no host could be started there: %s", joined, error)
            return
        self._nodes.update({node_id: alive[node_id] for node_id in joined})
        self._hosts.update(hosts)
        if self._watching_all:
            for name in hosts:
                self._watch(name)
        logger.warning("nodes joined the cluster: hosts %s now take runs", sorted(hosts))
        self._nodes_checked = 0.0  # recompute the placement with them at the next admission

    @property
    def _host_nodes(self) -> dict[str, str]:
        return {
            self._host_name(node_id, index): node_id
            for node_id in self._nodes
            for index in range(self._per_node)
        }

    async def admit(self, header: RunAdmittedEvent, *, owner: str) -> None:
        await self._admit(header, owner)

    async def _admit(self, header: RunAdmittedEvent, owner: str) -> bool:
        """Whether the run was admitted now (``False``: it, or its key's run, existed)."""
        if owner.startswith(RUN_PREFIX):
            return await self._admit_dedicated(header, owner)
        return await self._queue(header, owner)

    def _queue(
        self,
        header: RunAdmittedEvent,
        owner: str,
        meter: str | None = None,
        ending: asyncio.Future[RunRecord | bool] | None = None,
    ) -> asyncio.Future[bool]:
        """The host admits its runs itself (one writer per store file): the run is queued for
        its host's next batch; the future answers once the host says admission is durable."""
        self._watch_hosts()
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        key = (owner, meter, ending is not None)
        self._queued.setdefault(key, []).append((header, answer, ending))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Invocations made in this loop turn (a gather, concurrent requests) go together.
            asyncio.get_running_loop().call_soon(self._flush)
        return answer

    async def admit_many(
        self,
        headers: Sequence[RunAdmittedEvent],
        *,
        meter: str | None = None,
        endings: Endings | None = None,
    ) -> list[BaseException | bool | None]:
        """Every admission queued in this one loop turn, so each host gets its runs in chunks
        of at most ``_BATCH`` per Ray call (one store transaction each), not a call per run.
        ``meter``: the batch invocation the runs belong to; their hosts count their model
        calls for it (``batch_usage``). With ``endings``, that call goes on until the chunk's
        runs have ended, bringing back how each ended (``RunHost.admit_following``)."""
        loop = asyncio.get_running_loop()
        admissions: list[Awaitable[bool]] = []
        for header in headers:
            owner = self.owner_for(header["runId"], header["workflowName"])
            if owner.startswith(RUN_PREFIX):  # awaited through its actor's call (join)
                admissions.append(self._admit_dedicated(header, owner))
                continue
            ending: asyncio.Future[RunRecord | bool] | None = None
            if endings is not None:
                ending = endings[header["runId"]] = loop.create_future()
            admissions.append(self._queue(header, owner, meter, ending))
        outcomes = await asyncio.gather(*admissions, return_exceptions=True)
        answers: list[BaseException | bool | None] = []
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                answers.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome  # cancellation, interrupts: not a refusal of one run
            else:
                answers.append(outcome)
        return answers

    def _flush(self) -> None:
        self._flush_scheduled = False
        queued, self._queued = self._queued, {}
        loop = asyncio.get_running_loop()
        for (owner, meter, _), entries in queued.items():
            for at in range(0, len(entries), _BATCH):
                batch = entries[at : at + _BATCH]
                task = loop.create_task(self._hand_over(owner, batch, meter))
                self._handing_over.add(task)
                task.add_done_callback(self._handing_over.discard)

    async def _hand_over(self, owner: str, batch: list[_Queued], meter: str | None = None) -> None:
        """One Ray call hands a batch to its host, which admits it in one transaction, starts
        its runs and answers once the admission is durable: per run whether it admitted it now,
        else why not. If the call fails, every run of the batch fails to be admitted (the
        Runtime then ends any that the host did admit). A batch whose ends are awaited goes by
        a streamed call, which then brings them back (``_follow``)."""
        endings = {header["runId"]: ending for header, _, ending in batch if ending is not None}
        try:
            await self._admit_batch(owner, batch, meter, endings)
        finally:
            for ending in endings.values():  # not reported: followed through the log
                if not ending.done():
                    ending.set_result(True)

    async def _admit_batch(
        self,
        owner: str,
        batch: list[_Queued],
        meter: str | None,
        endings: dict[str, asyncio.Future[RunRecord | bool]],
    ) -> None:
        from ray.exceptions import ActorUnschedulableError, RayActorError

        headers = [header for header, _, _ in batch]
        following = bool(endings)
        stream: Any = None
        taker = owner
        try:
            try:
                answers, stream = await self._hand_to(owner, headers, meter, following)
            except (RayActorError, ActorUnschedulableError) as error:
                # The host is dead or unreachable (its node lost, say, before placement has
                # noticed; a host pinned to a node that is gone cannot even be rescheduled,
                # which Ray reports as unschedulable): the batch goes to another host once.
                # Had the lost host admitted it after all, the other finds the runs admitted
                # and leaves them to their owner's lease.
                other = self._other_host(owner, headers[0]["runId"])
                if other is None:
                    raise
                logger.warning(
                    "host %s did not take a batch (%s): handing it to %s", owner, error, other
                )
                taker = other
                answers, stream = await self._hand_to(other, headers, meter, following)
        except Exception as error:
            for _, answer, _ in batch:
                if not answer.done():
                    answer.set_exception(error)
            return
        for (_, answer, _), refusal in zip(batch, answers, strict=True):
            if answer.done():
                continue
            if isinstance(refusal, str):
                answer.set_exception(RuntimeError(refusal))
            else:  # a host of an earlier version answers None: not known, so looked up
                answer.set_result(refusal is True)
        if stream is not None:
            await self._follow(taker, stream, endings)

    async def _hand_to(
        self, owner: str, headers: list[RunAdmittedEvent], meter: str | None, following: bool
    ) -> tuple[list[str | bool | None], Any]:
        """The host's answers to a batch and, ``following``, the stream its ends come by."""
        host = self._hosts[owner]
        if not following:
            answers: list[str | bool | None] = await host.admit.remote(headers, meter)
            return answers, None
        stream = host.admit_following.options(num_returns="streaming").remote(headers, meter)
        answers = await (await stream.__anext__())
        return answers, stream

    async def _follow(
        self, owner: str, stream: Any, endings: dict[str, asyncio.Future[RunRecord | bool]]
    ) -> None:
        """Resolve each run's ending as its host reports how the run ended. Closing the
        backend stops this (the runs go on; their waiters follow the log)."""
        task = asyncio.current_task()
        assert task is not None
        self._following.add(task)
        try:
            async for reference in stream:
                reported: dict[str, RunRecord | bool] = await reference
                for run_id, ended in reported.items():
                    ending = endings.pop(run_id, None)
                    if ending is not None and not ending.done():
                        ending.set_result(ended)
        except Exception as error:  # the host died: the rest are followed through the log
            logger.warning(
                "host %s: the ends of %d runs were not reported: %s", owner, len(endings), error
            )
        finally:
            self._following.discard(task)

    def _other_host(self, owner: str, run_id: str) -> str | None:
        others = [name for name in self._names if name != owner]
        if not others:
            return None
        return others[zlib.crc32(run_id.encode("ascii")) % len(others)]

    def _watch_hosts(self) -> None:
        """One long-lived call per host, so that a host's death is noticed without a call per
        run (started with the first admission, in the serving loop)."""
        if self._watching_all:
            return
        self._watching_all = True
        for name in self._hosts:
            self._watch(name)

    def _watch(self, name: str) -> None:
        if name not in self._watches:
            task = asyncio.get_running_loop().create_task(self._watch_forever(name))
            self._watches[name] = task

    async def _watch_forever(self, name: str) -> None:
        """Wait on the host's ``watch`` call; when it fails with the host's death, end that
        host's active runs at once (fenced: a host presumed dead that still writes is refused),
        rather than after the lease. A restarted host is watched again; one that retired
        (its call returns) is not."""
        from ray.exceptions import ActorDiedError

        delay = _WATCH_RETRY_SECONDS
        while name in self._hosts:
            try:
                await self._hosts[name].watch.remote()
                return  # retired for good
            except ActorDiedError:
                services = self._services
                try:
                    # Runs that resume are left to the host's restarted incarnation (watched
                    # again below, it resumes them when it opens) or, if it never comes back,
                    # to the lease sweep, which hands them to a live host (``resume``).
                    ended = await end_orphaned_runs(
                        services.store,
                        services.clock,
                        stale_before_ms=services.clock.now_ms() + 1,
                        owner=name,
                        resume=self._resumes,
                    )
                except Exception as error:  # the lease sweep remains the backstop
                    logger.warning("host %s died; its runs could not be ended: %s", name, error)
                else:
                    if ended:
                        logger.warning("host %s died: %d of its runs were ended", name, len(ended))
            except Exception as error:
                logger.warning("host %s: watching it failed: %s", name, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _WATCH_RETRY_MAX_SECONDS)

    async def _resumes(self, run_id: str, previous: str | None = None) -> bool:
        """Whether the run's workflow (as this deployment has it) resumes after a crash."""
        header = await self._services.store.read_header(run_id)
        workflows = self._services.workflows
        if header is None or header["workflowName"] not in workflows:
            return False
        definition = workflows.get(header["workflowName"]).definition
        # A run in an actor of its own is not resumed in a shared host.
        return definition.recovery == "resume" and definition.placement.isolation == "host"

    async def resume(self, run_id: str, previous: str | None = None) -> bool | None:
        """The lease sweep's offer of an orphan (its owner ``previous`` as the sweep found it;
        ``None``: its owner now): hand it to a live host of this deployment, which resumes it
        by replay. ``False``: none took it (the caller ends it); ``None``: no host could be
        asked now (restarting), or its owner is restarting (for up to
        ``OWNER_RESTART_SECONDS``: it resumes the run itself as it opens), so the run is left
        for the next sweep.

        Its owner, when it is one of these hosts, is asked first: a silent lease does not mean
        a dead host (a busy one's heartbeat can lag past the lease), and a live owner answers
        that it still has the run (or, restarted, resumes it itself) rather than another host
        taking over a run that is still running."""
        from ray.exceptions import ActorUnavailableError

        if not await self._resumes(run_id):
            return False
        self._follow_nodes()  # a host whose node died is restarting for ever: not asked
        owner = previous or await self._services.store.owner_of(run_id)
        restarting = False
        for name in sorted(self._names, key=lambda name: name != owner):
            try:
                declined: list[str] = await self._hosts[name].resume.remote([run_id])
            except ActorUnavailableError as error:  # back soon
                logger.warning("host %s could not take over run %s: %s", name, run_id, error)
                if name == owner and self._restarts.waits_for(name, time.monotonic()):
                    # It resumes its past life's runs itself as it opens, this one among them,
                    # and under the same name: another host's claim would succeed as well
                    # and run it twice. Left for the next sweep, which asks it again.
                    return None
                restarting = True
                continue
            except Exception as error:  # another host may take it
                logger.warning("host %s could not take over run %s: %s", name, run_id, error)
                continue
            self._restarts.answered(name)
            if run_id not in declined:
                return True
            if name != owner:
                return False
            # Its owner declined it (it is draining): another host may take it over.
        return None if restarting else False

    async def _admit_dedicated(self, header: RunAdmittedEvent, owner: str) -> bool:
        """An actor of its own for the run (``isolation="process"``): admitted here, since
        the actor does not exist yet, then handed over with a call awaited until the run ends."""
        run_id = header["runId"]
        if not await self._services.store.admit_run(header, owner=owner):
            return False  # it exists already, or its idempotency key admitted another run
        # A dedicated actor heartbeats only once its process is up, which can take longer
        # than the lease on a busy node: until its run settles, this process holds the
        # lease for it, so the sweep never ends a run whose actor is merely starting (and
        # still does if this process dies before the actor is up).
        lease = OwnerLease(self._services.store, owner)
        await lease.beat()
        lease.keep_alive()
        self._starting[run_id] = lease
        placement = self._placement(header["workflowName"])
        config = HostConfig(owner=owner, deployment=self._deployment, dedicated=True)
        host = self._host_class.options(
            name=owner,
            namespace=NAMESPACE,
            lifetime="detached",
            max_restarts=0,
            max_task_retries=0,
            **actor_options(placement),
        ).remote(config)
        reference = host.run.remote(header)
        self._pending[run_id] = asyncio.ensure_future(self._settle(run_id, reference))
        return True

    async def _settle(self, run_id: str, reference: Any) -> None:
        from ray.exceptions import ActorDiedError

        try:
            await reference
        except ActorDiedError:
            # The actor died under the run: it is certainly not running any more.
            services = self._services
            if await end_interrupted_run(services.store, run_id, services.clock):
                logger.warning("run %s: its actor died; the run has been ended", run_id)
        except Exception as error:  # the lease sweep remains the backstop
            logger.warning("run %s: its actor did not answer: %s", run_id, error)
        finally:
            self._pending.pop(run_id, None)
            lease = self._starting.pop(run_id, None)
            if lease is not None:
                await lease.stop()

    async def join(self, run_id: str) -> bool:
        """Only runs with an actor of their own are awaited here; a host's runs are followed
        through the log (``Runtime.wait``), with no per-run call to hold."""
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
        """On a cluster, hosts are left running: runs already admitted go on (the lease sweep
        is the Runtime's, see ``LeaseSupervisor``). A private instance ends with this process
        and takes its hosts along, so its runs get the grace to finish, as the local backend's
        do, and those still going are then ended ``run_interrupted`` (by their host, or here
        for a dedicated actor's) rather than left to the next process's sweep."""
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()
        for following in list(self._following):
            following.cancel()
        if not self._private:
            return
        settling = [host.settle.remote(grace_seconds) for host in self._hosts.values()]
        pending = dict(self._pending)
        if pending and (grace_seconds is None or grace_seconds > 0):
            await asyncio.wait(set(pending.values()), timeout=grace_seconds)
        for outcome in await asyncio.gather(*settling, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.error("a host could not settle its runs at shutdown: %s", outcome)
        services = self._services
        for run_id, settled in pending.items():
            if settled.done():
                continue
            settled.cancel()
            try:
                if await end_interrupted_run(services.store, run_id, services.clock):
                    logger.warning("run %s was interrupted by the shutdown of Ray", run_id)
            except Exception as error:  # the next process's sweep remains
                logger.error("run %s could not be ended at shutdown: %s", run_id, error)

    async def model_batch_progress(
        self, settings: ModelBatches | None = None
    ) -> dict[str, int] | None:
        """The counters of the collector this deployment's hosts share for ``settings`` (by
        default the deployment's own; ``None`` without model batches)."""
        deployment = self._deployment
        settings = settings or deployment.model_batches
        if settings is None:
            return None
        from .turn_batcher import RayTurnBatcher

        return await RayTurnBatcher(deployment.collector_for(settings), settings).progress()

    async def retire_model_batches(self, settings: ModelBatches) -> None:
        """A batch with model batches of its own has ended: its collector exits once no turn
        is in a call to it (the deployment's own collector stays, for the runtime's runs)."""
        deployment = self._deployment
        if settings == deployment.model_batches:
            return
        from .turn_batcher import RayTurnBatcher

        await RayTurnBatcher(deployment.collector_for(settings), settings).retire()

    async def batch_usage(self, meter: str) -> Usage:
        """The usage of the model calls the runs of batch invocation ``meter`` made, summed
        over the hosts (one call each, once its runs have ended; each host then forgets it).
        Runs resumed on another host after their host died are not counted there."""
        answers = await asyncio.gather(
            *(host.usage.remote(meter) for host in self._hosts.values()), return_exceptions=True
        )
        total = Usage()
        for answer in answers:
            if isinstance(answer, Usage):
                total = total + answer
            elif isinstance(answer, BaseException):
                logger.warning("a host could not say what a batch's model calls used: %s", answer)
        return total

    async def rate_limit_stats(self) -> dict[str, float] | None:
        """The shared budget's counters (``throttled_seconds``, ``cooldowns``) since it was
        made; ``None`` without rate limits."""
        deployment = self._deployment
        if deployment.rate_limits is None or deployment.rate_limiter is None:
            return None
        from .rate_limiter import RayRateLimiter

        return await RayRateLimiter(deployment.rate_limiter, deployment.rate_limits).stats()

    def shutdown_hosts(self) -> None:
        """End this backend's host processes (their runs end with them)."""
        for host in self._hosts.values():
            self._ray.kill(host, no_restart=True)
