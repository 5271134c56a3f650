"""The Runtime: admits runs, hands them to a backend, and reads them back from the log."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .._clock import Clock, SystemClock, format_timestamp
from .._definitions import WorkflowDefinition
from .._events import RunAdmittedEvent
from .._ids import IdSource, UlidIds
from .._jsonvalue import UNSET, JsonValue, NotJsonError, Unset, snapshot
from .._records import RunPage, RunRecord, RunStatus
from ..errors import (
    FlueError,
    IdempotencyKeyConflictError,
    IdempotencyKeyInvalidError,
    RunNotFoundError,
    RunStoreUnavailableError,
    StreamClosedError,
    StreamConflictError,
    WorkflowAdmissionFailedError,
    WorkflowInputSerializationError,
    WorkflowInputUnexpectedError,
    WorkflowNotDiscoveredError,
)
from ..models import ModelBatches, ModelRegistry
from ..store import (
    MAX_KEY_LENGTH,
    EventStore,
    KeyedRun,
    StoredEvent,
    StreamMeta,
    StreamPage,
    absolute_database_url,
    input_fingerprint,
    open_store,
    parse_offset,
    run_stream,
)
from . import ambient
from .backend import BackendFactory, Endings, LocalBackend, RunBackend
from .batch_item import BatchItem
from .discovery import DiscoveredWorkflow, WorkflowRegistry
from .lease import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_SWEEP_SECONDS,
    check_lease_settings,
    lease_deadline_ms,
    living_leases,
)
from .recovery import end_cancelled_run, end_orphaned_runs, end_unstarted_run
from .services import RunServices
from .supervisor import LeaseSupervisor

__all__ = ["RunReceipt", "Runtime", "WorkflowSource", "check_idempotency_key"]

WorkflowSource = (
    WorkflowRegistry | Mapping[str, WorkflowDefinition | DiscoveredWorkflow] | str | Path
)
LIVE_WAIT_SECONDS = 30.0
logger = logging.getLogger("flue_actors.runtime")


class RunReceipt:
    """What ``invoke`` returns once admission is durable. ``created`` is ``False`` when an
    idempotency key found the run an earlier invocation admitted."""

    __slots__ = ("created", "run_id", "workflow_name")

    def __init__(self, run_id: str, workflow_name: str, *, created: bool = True) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.created = created

    def __repr__(self) -> str:
        return (
            f"RunReceipt(run_id={self.run_id!r}, workflow_name={self.workflow_name!r}, "
            f"created={self.created!r})"
        )


def check_idempotency_key(key: str) -> str:
    """``key`` if it can be stored and sent as an HTTP header value, else a typed refusal."""
    if not isinstance(key, str) or not key:
        raise IdempotencyKeyInvalidError(reason="it must be a non-empty string.")
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalidError(reason=f"it is longer than {MAX_KEY_LENGTH} characters.")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise IdempotencyKeyInvalidError(reason="it holds control characters.")
    return key


def _keyed_receipt(
    workflow: str, key: str, value: JsonValue | Unset, found: KeyedRun
) -> RunReceipt | FlueError:
    if found.fingerprint != input_fingerprint(value):
        return IdempotencyKeyConflictError(workflow=workflow, key=key, run_id=found.run_id)
    return RunReceipt(found.run_id, workflow, created=False)


def _registry(workflows: WorkflowSource) -> WorkflowRegistry:
    if isinstance(workflows, WorkflowRegistry):
        return workflows
    if isinstance(workflows, (str, Path)):
        return WorkflowRegistry.discover(workflows)
    return WorkflowRegistry.from_definitions(workflows)


class Runtime:
    """Runs workflows and answers questions about runs.

    ``workflows`` is a directory to discover, a mapping of names to definitions, or a registry.
    ``store`` is an :class:`EventStore` or a database URL (default: ``FLUE_DATABASE_URL``, else
    ``.flue/flue.db``). ``models`` defaults to the registry ``FLUE_MODEL`` configures.

    ``backend`` is where runs execute: this process (the default), a :class:`RunBackend`, or a
    :class:`BackendFactory` called with the runtime's services, such as
    :class:`~flue_actors._runtime.ray.RayCluster` (RunHosts on a Ray cluster).

    ``lease_seconds`` and ``sweep_seconds`` govern recovery once :meth:`serve` is called:
    a sweep made every ``sweep_seconds`` finds each run whose owner has not heartbeated for
    ``lease_seconds``; on the local backend it is resumed here by replay (unless its workflow
    says ``recovery="fail"``), otherwise ended ``run_interrupted``.

    ``model_batches`` (a :class:`~flue_actors.models.ModelBatches`) sends every Anthropic model
    turn of this runtime's runs through the Message Batches API, at half the price: one
    collector per runtime, so turns of all its runs share batches.
    """

    def __init__(
        self,
        workflows: WorkflowSource,
        *,
        store: EventStore | str | None = None,
        backend: RunBackend | BackendFactory | None = None,
        models: ModelRegistry | None = None,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        env: Mapping[str, str] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        sweep_seconds: float = DEFAULT_SWEEP_SECONDS,
        model_batches: ModelBatches | None = None,
    ) -> None:
        check_lease_settings(lease_seconds, sweep_seconds)
        models_given = models is not None
        if model_batches is not None and backend is not None and not callable(backend):
            raise ValueError(
                "model_batches needs a backend the runtime builds (this process's, or a "
                "BackendFactory such as RayCluster), not a RunBackend already made."
            )
        # A backend factory reads the settings from the registry (services.models): on Ray the
        # hosts batch their runs' turns through one collector of the cluster.
        if model_batches is not None:
            models = (
                models.with_model_batches(model_batches)
                if models is not None
                else ModelRegistry.from_environment(model_batches=model_batches)
            )
        self.workflows = _registry(workflows)
        if store is None or isinstance(store, str):
            self.database_url: str | None = absolute_database_url(store)
            self.store: EventStore = open_store(self.database_url)
        else:
            self.database_url, self.store = None, store
        self.clock = clock or SystemClock()
        self.ids = ids or UlidIds(self.clock)
        self.services = RunServices(
            store=self.store,
            workflows=self.workflows,
            models=models or ModelRegistry.from_environment(),
            clock=self.clock,
            ids=self.ids,
            env=dict(os.environ if env is None else env),
            runtime=self,
        )
        self.supervisor = LeaseSupervisor(
            self.store, self.clock, lease_seconds=lease_seconds, sweep_seconds=sweep_seconds
        )
        if backend is None:
            self.backend: RunBackend = LocalBackend(self.services)
        elif callable(backend):
            self.backend = backend(
                self.services, database_url=self.database_url, models_given=models_given
            )
        else:
            self.backend = backend
        resume = getattr(self.backend, "resume", None)
        if resume is not None:
            # Orphans are resumed by replay (workflows with recovery="resume"): here on the
            # local backend, on a live host on Ray.
            self.supervisor.resume = resume
        self._closed = False
        ambient.serving(self)  # ambient invoke() outside runs finds it, until it is closed

    async def model_batch_progress(
        self, model_batches: ModelBatches | None = None
    ) -> dict[str, int] | None:
        """With ``model_batches``, where its model turns are: ``pending`` (waiting for their
        batch to go out), ``waiting`` (in a batch still processing), ``done`` (answered),
        ``submitted`` and ``batches`` (so far). Counted by the collector, so since it started
        (on Ray: the deployment's, shared by its hosts); ``None`` without model batches.
        ``model_batches``: the collector of the batches with these settings
        (``batch(..., model_batches=)``) rather than the runtime's own."""
        progress = getattr(self.backend, "model_batch_progress", None)
        if progress is not None:
            counted: dict[str, int] | None = await progress(model_batches)
            return counted
        models = self.services.models
        if model_batches is not None:
            models = self.services.batched_models(model_batches)
        batcher = models.batcher
        return None if batcher is None else await batcher.progress()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def prepare_models(self) -> list[str]:
        """Get the model providers this runtime's workflows will call ready now, in this
        process: those of the models their agents name up front, or ``FLUE_MODEL``'s (see
        :meth:`ModelRegistry.prepare`). For a process about to take work, before it does.
        Returns the providers' names."""
        return self.services.models.prepare(self.workflows.declared_models())

    async def serve(self) -> list[str]:
        """Start serving: end the runs whose owner's lease has expired now, then keep sweeping
        every ``sweep_seconds`` until :meth:`close` (see ``LeaseSupervisor``). Call it in the
        event loop that serves (a PostgreSQL store belongs to the loop it first runs on).
        Returns the runs the first sweep ended."""
        ended = await self.supervisor.sweep()
        self.supervisor.start()
        return ended

    async def close(self, *, grace_seconds: float | None = None) -> None:
        """Stop sweeping; let runs in flight here finish (at most ``grace_seconds``, after which
        those of workflows with ``recovery="resume"`` are stopped and left to be resumed by
        replay wherever the store is swept next, the others ended ``run_interrupted``, and this
        process's lease released), then close the backend and the store."""
        if self._closed:
            return
        self._closed = True
        ambient.closed(self)
        await self.supervisor.stop()
        await self.backend.close(grace_seconds=grace_seconds)
        await self.services.aclose_batched()
        await self.services.models.aclose()  # the model SDKs' connections
        await self.store.close()

    # --- invocation ------------------------------------------------------------------------------

    def workflow(self, workflow: WorkflowDefinition | str) -> DiscoveredWorkflow:
        """The discovered workflow a definition or name refers to."""
        if isinstance(workflow, str):
            return self.workflows.get(workflow)
        found = self.workflows.find(workflow)
        if found is None:
            raise WorkflowNotDiscoveredError()
        return found

    def check_input(
        self, workflow: WorkflowDefinition | str, input: Any = UNSET
    ) -> JsonValue | Unset:
        """Everything ``invoke`` checks before admission, plus the input schema; returns the
        JSON snapshot of ``input``. The gateway and the CLI call it so that bad input is refused
        with no run created."""
        entry = self.workflow(workflow)
        value = self._snapshot_input(entry, input)
        entry.definition.action.parse_input(value, workflow=entry.name)
        return value

    def _snapshot_input(self, entry: DiscoveredWorkflow, input: Any) -> JsonValue | Unset:
        if entry.definition.action.input is None and input is not UNSET:
            raise WorkflowInputUnexpectedError(workflow=entry.name)
        value: JsonValue | Unset = UNSET
        if input is not UNSET:
            try:
                value = snapshot(input, where="input")
            except NotJsonError as error:
                reason = str(error)
                raise WorkflowInputSerializationError(workflow=entry.name, reason=reason) from None
        return value

    async def invoke(
        self,
        workflow: WorkflowDefinition | str,
        input: Any = UNSET,
        *,
        trace_carrier: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RunReceipt:
        """Admit a run and return its receipt as soon as admission is durable.

        As in Flue, input is checked against the schema by the run itself (an admitted run with
        bad input ends errored with ``action_input_validation``); use :meth:`check_input` first
        to refuse it without a run.

        ``idempotency_key`` (per workflow): a key invoked before with the same input returns
        that run (``created=False``); with other input, ``IdempotencyKeyConflictError``. The key
        is claimed in the admission's own transaction, so concurrent invocations with one key
        make one run.
        """
        entry = self.workflow(workflow)
        value = self._snapshot_input(entry, input)
        key = None if idempotency_key is None else check_idempotency_key(idempotency_key)
        [outcome] = await self._admit(entry, [(value, key)], trace_carrier=trace_carrier)
        if isinstance(outcome, FlueError):
            raise outcome
        return outcome

    async def invoke_many(
        self,
        workflow: WorkflowDefinition | str,
        inputs: Iterable[Any],
        *,
        keys: Iterable[str | None] | None = None,
    ) -> list[RunReceipt]:
        """Admit a run per input, in one store transaction (on Ray, one per host and chunk),
        and return their receipts in order. Every input is checked as :meth:`invoke` checks it
        before anything is admitted. ``keys``, one per input (``None``: no key), are
        idempotency keys as in :meth:`invoke`; a conflicting key raises
        ``IdempotencyKeyConflictError`` after the others are admitted (invoking again with the
        same keys returns them)."""
        entry = self.workflow(workflow)
        values = [self._snapshot_input(entry, value) for value in inputs]
        key_list = [None] * len(values) if keys is None else list(keys)
        if len(key_list) != len(values):
            raise ValueError(f"{len(key_list)} keys for {len(values)} inputs")
        checked = [None if key is None else check_idempotency_key(key) for key in key_list]
        outcomes = await self._admit(entry, list(zip(values, checked, strict=True)))
        for outcome in outcomes:
            if isinstance(outcome, FlueError):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, RunReceipt)]

    def batch(
        self,
        workflow: WorkflowDefinition | str,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int = 256,
        key: str | Callable[[Any], str | None] | None = None,
        model_batches: ModelBatches | None = None,
    ) -> AsyncIterator[BatchItem]:
        """Run a workflow once per input; yields a :class:`BatchItem` per input as its run ends
        (completion order). ``inputs`` is read as runs free up, never loaded whole; at most
        ``concurrency`` runs are active at once, admitted in bulk (see :meth:`invoke_many`).

        ``key`` makes the batch resumable: a field name of each (mapping) input, or a function
        of the input, giving its idempotency key. Run again after a crash, items whose key ran
        before are answered from (or re-attached to) that run instead of running again. An input
        that fails the schema is an errored item, with no run.

        ``model_batches`` sends every Anthropic model turn of the batch's runs through the
        Message Batches API, as ``Runtime(model_batches=)`` does for every run; the runtime's
        other runs keep the Messages API. Each run's header records the settings, so a run
        resumed after a crash batches its turns alike."""
        from .batch import run_batch  # the batch loop is loaded by the callers that use it

        return run_batch(
            self,
            self.workflow(workflow),
            inputs,
            concurrency=concurrency,
            key=key,
            model_batches=model_batches,
        )

    async def _admit(
        self,
        entry: DiscoveredWorkflow,
        items: Sequence[tuple[JsonValue | Unset, str | None]],
        *,
        trace_carrier: Mapping[str, str] | None = None,
        model_batches: ModelBatches | None = None,
        meter: str | None = None,
        endings: Endings | None = None,
    ) -> list[RunReceipt | FlueError]:
        """Admit checked inputs with their optional keys: per item its receipt, or the typed
        reason it has none (a key conflict, a failed admission). ``model_batches``: the runs'
        own (see :meth:`batch`); ``meter``: the batch invocation whose model usage a backend
        that runs them elsewhere counts (the Ray backend's ``batch_usage``); ``endings``: filled,
        for runs admitted now, with a future of how each ended, when the backend can report it
        (see ``RunBackend.admit``)."""
        batching = None if model_batches is None else model_batches.to_wire()
        outcomes: list[RunReceipt | FlueError | None] = [None] * len(items)
        keys = [key for _, key in items if key is not None]
        known = await self.store.keyed_runs(entry.name, keys) if keys else {}
        headers: list[RunAdmittedEvent] = []
        positions: list[int] = []
        for position, (value, key) in enumerate(items):
            if key is not None and key in known:
                outcomes[position] = _keyed_receipt(entry.name, key, value, known[key])
                continue
            header: RunAdmittedEvent = {
                "type": "run_admitted",
                "runId": "run_" + self.ids.ulid(),
                "workflowName": entry.name,
                "startedAt": format_timestamp(self.clock.now_ms()),
            }
            if value is not UNSET:
                header["input"] = value
            if trace_carrier:
                header["traceCarrier"] = dict(trace_carrier)
            if key is not None:
                header["idempotencyKey"] = key
            if batching is not None:
                header["modelBatches"] = batching
            headers.append(header)
            positions.append(position)
        if not headers:
            return [outcome for outcome in outcomes if outcome is not None]
        if len(headers) == 1 and endings is None:
            # The backend admits where the run's owner writes: in this process for the local
            # backend, in its host for Ray (one writer per store file).
            header = headers[0]
            owner = self.backend.owner_for(header["runId"], entry.name)
            try:
                await self.backend.admit(header, owner=owner)
                answers: list[BaseException | bool | None] = [None]
            except Exception as error:
                answers = [error]
        else:
            answers = await self._admit_headers(headers, meter, endings)
        if endings is not None:
            for header, answer in zip(headers, answers, strict=True):
                if answer is not True:  # not admitted now: nobody awaits that id's end
                    endings.pop(header["runId"], None)
        # A key admitted elsewhere meanwhile (a concurrent invocation) admitted no run here;
        # a run the backend says it admitted now holds its key, with nothing to look up.
        keyed = [
            header["idempotencyKey"]
            for header, answer in zip(headers, answers, strict=True)
            if "idempotencyKey" in header and answer is not True
        ]
        claimed = await self.store.keyed_runs(entry.name, keyed) if keyed else {}
        for position, header, failure in zip(positions, headers, answers, strict=True):
            if isinstance(failure, BaseException):
                await self._end_unstarted(header, failure)
                if isinstance(failure, RunStoreUnavailableError):
                    # It already says what failed, and that a retry may succeed.
                    outcomes[position] = failure
                    continue
                reason = str(failure)
                outcomes[position] = WorkflowAdmissionFailedError(
                    workflow=entry.name, reason=reason
                )
                continue
            key = header.get("idempotencyKey")
            found = None if key is None else claimed.get(key)
            if key is not None and found is not None and found.run_id != header["runId"]:
                outcomes[position] = _keyed_receipt(entry.name, key, items[position][0], found)
            else:
                outcomes[position] = RunReceipt(header["runId"], entry.name)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _admit_headers(
        self,
        headers: list[RunAdmittedEvent],
        meter: str | None = None,
        endings: Endings | None = None,
    ) -> list[BaseException | bool | None]:
        admit_many = getattr(self.backend, "admit_many", None)
        if admit_many is not None:
            options: dict[str, Any] = {} if meter is None else {"meter": meter}
            if endings is not None:
                options["endings"] = endings
            answers: list[BaseException | bool | None] = await admit_many(headers, **options)
            return answers
        backend = self.backend
        outcomes = await asyncio.gather(
            *(
                backend.admit(
                    header, owner=backend.owner_for(header["runId"], header["workflowName"])
                )
                for header in headers
            ),
            return_exceptions=True,
        )
        return [outcome if isinstance(outcome, Exception) else None for outcome in outcomes]

    async def _end_unstarted(self, header: RunAdmittedEvent, error: BaseException) -> None:
        """After a failed admission: a run that was admitted but never started (its hand-over
        failed, or its owner died before answering) is ended with only an errored ``run_end``,
        so no run is left half-written. Fenced: one its owner did start is left to its owner
        (or, if that owner is gone, to the lease sweep)."""
        try:
            record = await self.store.get_run(header["runId"])
            if record is not None and not record.is_terminal:
                await end_unstarted_run(self.store, header, self.clock, error)
        except (StreamConflictError, StreamClosedError):
            logger.warning("run %s: started by its owner after all", header["runId"])
        except Exception as cleanup:  # the store itself failing: nothing more to do here
            logger.error("run %s: could not be ended: %s", header["runId"], cleanup)

    async def run(
        self,
        workflow: WorkflowDefinition | str,
        input: Any = UNSET,
        *,
        timeout: float | None = None,
    ) -> RunRecord:
        """Invoke and wait: the run's terminal record."""
        receipt = await self.invoke(workflow, input)
        return await self.wait(receipt.run_id, timeout=timeout)

    async def recover(
        self, *, lease_seconds: float | None = None, resume: bool = False
    ) -> list[str]:
        """Take over every run whose owner has not been heard of for ``lease_seconds``
        (default: the runtime's lease; a crashed process, a lost node) and return them. Each
        is ended (``run_resume`` then an errored ``run_end``, ``run_interrupted``), or, with
        ``resume``, resumed here by replay if its workflow is here and resumes
        (``recovery="resume"``, as the lease sweep does): :meth:`wait` gives each one's end.
        Runs of owners living in this process are never taken, whatever their heartbeat
        says."""
        lease = self.supervisor.lease_seconds if lease_seconds is None else lease_seconds
        deadline = lease_deadline_ms(lease)
        spare = {owner.owner for owner in living_leases()}
        offer = self.supervisor.resume if resume else None
        resumed: list[str] = []

        async def resume_here(run_id: str, previous: str | None) -> bool | None:
            assert offer is not None
            taken = await offer(run_id, previous)
            if taken:
                resumed.append(run_id)
            return taken

        ended = await end_orphaned_runs(
            self.store,
            self.clock,
            stale_before_ms=deadline,
            spare=spare,
            resume=None if offer is None else resume_here,
        )
        return resumed + ended

    async def cancel(self, run_id: str, reason: str = "The run was cancelled.") -> bool:
        """Cancel an active run; ``False`` only if its record is not active (ended, unknown).

        The run's owner is asked first (in this process, or its Ray host), and the run ends
        ``run_cancelled`` when the owner has aborted it. If no owner reachable from here has the
        run (its process crashed and the lease has not yet expired, or it is hosted by a local
        backend in another process), the run is ended here at once, ``run_resume`` then an
        errored ``run_end`` of type ``run_cancelled``, through the same fenced append as
        recovery: an owner that is in fact still running it is refused its next write and
        records nothing more. Either way the record never stays ``active`` after ``True``."""
        record = await self.store.get_run(run_id)
        if record is None or record.is_terminal:
            return False
        try:
            if await self.backend.cancel(run_id, reason):
                return True
        except Exception as error:  # an owner that fails to answer is treated as unreachable
            logger.warning("run %s: its owner did not take the cancellation: %s", run_id, error)
        if await end_cancelled_run(self.store, run_id, self.clock, reason):
            return True
        # Ended meanwhile (by its owner or a sweep): the record says so, and so do we.
        record = await self.store.get_run(run_id)
        if record is None or record.is_terminal:
            return False
        raise RuntimeError(f"run {run_id} could not be cancelled: its stream kept moving")

    async def rebuild_records(self) -> int:
        """Drop every run record and refold it from the log (after tampering, or a projection
        bug). Returns how many were rebuilt."""
        return await self.store.rebuild_records()

    # --- reading ---------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.store.get_run(run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> RunPage:
        return await self.store.list_runs(
            status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def read_events(
        self, run_id: str, *, offset: str = "-1", limit: int | None = None
    ) -> StreamPage:
        """One page of a run's events strictly after ``offset``."""
        return await self.store.read(run_stream(run_id), offset=offset, limit=limit)

    async def stream_meta(self, run_id: str) -> StreamMeta | None:
        """Where a run's stream stands (last offset, length, closed); ``None`` if unknown."""
        return await self.store.stream_meta(run_stream(run_id))

    async def wait_for_events(self, run_id: str, *, length: int, timeout: float) -> bool:
        """Wait until a run's stream holds more than ``length`` events or is closed; ``False``
        on timeout. Woken by the store's notifications, never by polling."""
        return await self.store.wait_for_append(run_stream(run_id), length=length, timeout=timeout)

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run so far."""
        return [event.data async for event in self.follow(run_id, live=False)]

    async def follow(
        self, run_id: str, *, offset: str = "-1", live: bool = True
    ) -> AsyncIterator[StoredEvent]:
        """A run's events from ``offset`` on; with ``live``, until its stream closes."""
        path = run_stream(run_id)
        while True:
            page = await self.store.read(path, offset=offset, limit=1000)
            for event in page.events:
                yield event
            offset = page.next_offset
            if page.up_to_date and (page.closed or not live):
                return
            if page.up_to_date:
                await self.store.wait_for_append(
                    path, length=parse_offset(offset) + 1, timeout=LIVE_WAIT_SECONDS
                )

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunRecord:
        """The run's record once it is terminal. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # A run hosted here is awaited directly; any other is watched through the log.
            if timeout is None:
                joined = await self.backend.join(run_id)
            else:
                joined = await asyncio.wait_for(self.backend.join(run_id), timeout)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} did not end within {timeout} s") from None
        if isinstance(joined, RunRecord):
            return joined  # its run_end was written here: the record the store holds
        path = run_stream(run_id)
        while True:
            record = await self.store.get_run(run_id)
            if record is None:
                raise RunNotFoundError(run_id=run_id)
            if record.is_terminal:
                return record
            meta = await self.store.stream_meta(path)
            remaining = LIVE_WAIT_SECONDS
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"run {run_id} did not end within {timeout} s")
            await self.store.wait_for_append(
                path, length=meta.length if meta else 0, timeout=min(remaining, LIVE_WAIT_SECONDS)
            )
