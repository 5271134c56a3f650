"""Where admitted runs execute. The Runtime admits; a backend hosts the RunActors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping, Sequence
from typing import Protocol, TypeAlias

from .._events import RunAdmittedEvent
from .._records import RunRecord
from ..errors import StreamClosedError, StreamConflictError
from ..store import EventStore
from .lease import HEARTBEAT_SECONDS, OwnerLease, process_owner_name
from .recovery import end_interrupted_run
from .run_actor import RunActor, read_run_events
from .services import RunServices

__all__ = ["BackendFactory", "Endings", "LocalBackend", "RunBackend"]

logger = logging.getLogger("flue_actors.runtime")

# Per run admitted now: how it ended, as its owner reports it: its terminal record when the
# owner wrote its ``run_end``, else ``True`` (the log says what became of it). See ``join``.
Endings: TypeAlias = MutableMapping[str, "asyncio.Future[RunRecord | bool]"]


class RunBackend(Protocol):
    def owner_for(self, run_id: str, workflow: str) -> str:
        """The owner that will execute this run, recorded at admission."""
        ...

    async def admit(self, header: RunAdmittedEvent, *, owner: str) -> None:
        """Make the run's admission durable, recorded with ``owner`` (from ``owner_for``), and
        hand the run to that owner. Returns once both are done: the run then exists, and its
        owner has it. Raises if either fails; the caller then ends the run if it was admitted
        (with only an errored ``run_end``), so none is left half-written.

        A backend may also offer ``admit_many(headers) -> list[BaseException | bool | None]``:
        the same for many runs (each with its ``owner_for`` owner) in as few store transactions
        and calls to owners as it can, per run whether it was admitted now (``False``: a run
        with its id, or its idempotency key, existed; ``None``: not known) or why not; without
        it, the Runtime admits them one ``admit`` each. ``admit_many(headers, endings=...)``
        also puts into ``endings``, per run it admitted now, a future of how it ended (as
        ``join`` answers), so a caller awaiting every run (a batch) holds no call and makes no
        read per run where the runs execute elsewhere."""
        ...

    async def join(self, run_id: str) -> RunRecord | bool:
        """Wait for a run this backend hosts here to end; ``False`` if it does not know it.
        Its terminal record when the run's ``run_end`` was written here (the record the store
        now holds, with no read of it), ``True`` if it ended otherwise."""
        ...

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Ask the run's owner to cancel it; ``False`` if no live owner has it."""
        ...

    async def close(self, *, grace_seconds: float | None = None) -> None:
        """Release resources. Runs hosted in this process get ``grace_seconds`` to finish
        (``None``: as long as they take); any still going then is ended ``run_interrupted``."""
        ...


class BackendFactory(Protocol):
    """Builds a Runtime's backend from what the Runtime made: its services, the store's URL
    (``None`` when the Runtime was given a store object; a backend whose hosts open the store
    themselves needs the URL) and whether the caller passed a model registry (a backend whose
    hosts build their own from ``FLUE_MODEL`` cannot use one)."""

    def __call__(
        self, services: RunServices, *, database_url: str | None, models_given: bool
    ) -> RunBackend: ...


class LocalBackend:
    """RunActors as tasks in the event loop that admits them.

    A run hosted here can be ended by another process (a cancellation that another gateway
    process took, or a sweep that presumed this one dead): its log is then closed to this
    process, which learns it at its next append. With ``watch_ended_elsewhere`` (the workers
    of ``serve --workers``, where a cancellation often lands on another worker), a run that
    appends nothing for a while (a long model call, a sleep) is found sooner, by a check of
    the records of the runs hosted here for a whole ``HEARTBEAT_SECONDS``, and stopped: its
    work could no longer be recorded. Off by default: it reads one record per long run per
    interval, which a batch of thousands of runs waiting on their model would pay for
    nothing."""

    def __init__(
        self,
        services: RunServices,
        *,
        owner: str | None = None,
        watch_ended_elsewhere: bool = False,
    ) -> None:
        self._services = services
        self._actors: dict[str, RunActor] = {}
        self._tasks: dict[str, asyncio.Task[object]] = {}
        # Who waits for a run's end (join), by run: resolved when its task is done.
        self._joiners: dict[str, list[asyncio.Future[RunRecord | bool]]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._watch_ended_elsewhere = watch_ended_elsewhere
        self._resuming: set[str] = set()  # runs a resume() call is taking over now
        self.lease = OwnerLease(services.store, owner or process_owner_name("local"))

    def owner_for(self, run_id: str, workflow: str) -> str:
        return self.lease.owner

    @property
    def store(self) -> EventStore:
        return self._services.store

    async def admit(self, header: RunAdmittedEvent, *, owner: str) -> None:
        """Admission in this process's store, then the run starts here (unless it existed
        already, or its idempotency key belongs to another run)."""
        if await self._services.store.admit_run(header, owner=owner):
            await self.start(header)

    async def admit_many(
        self, headers: Sequence[RunAdmittedEvent], *, endings: Endings | None = None
    ) -> list[BaseException | bool | None]:
        """One transaction for all of them, then each admitted run starts here."""
        try:
            admitted = await self._services.store.admit_runs(headers, owner=self.lease.owner)
        except Exception as error:
            return [error] * len(headers)
        answers: list[BaseException | bool | None] = []
        for header, new in zip(headers, admitted, strict=True):
            try:
                if new:
                    await self.start(header)
                    ending = None if endings is None else self.ending(header["runId"])
                    if endings is not None and ending is not None:
                        endings[header["runId"]] = ending
                answers.append(new)
            except Exception as error:
                answers.append(error)
        return answers

    async def start(self, header: RunAdmittedEvent) -> None:
        """Start an admitted run in this event loop (a Ray host admits a batch, then starts
        each of its runs here)."""
        self.lease.keep_alive()
        self._launch(RunActor(header, self._services))

    async def resume(self, run_id: str, previous: str | None = None) -> bool:
        """Take over a run whose owner is gone (``previous``, as the lease sweep found it;
        ``None``: its owner now) and resume it here by replay (its workflow again from the
        top, answered from its log). ``False`` if it is not to be resumed (no such run, its
        workflow is unknown here or says ``recovery="fail"``, or it has its ``run_end``
        already): the caller then ends it. ``True`` also when another process took it over
        first."""
        if run_id in self._actors or run_id in self._resuming:
            # Already here, or being taken over here by another caller (a restarted Ray
            # host resumes its runs as it opens while a sweep may ask it for the same one):
            # a second claim would succeed under the same owner and run the body twice.
            return True
        self._resuming.add(run_id)
        try:
            return await self._resume(run_id, previous)
        finally:
            self._resuming.discard(run_id)

    async def _resume(self, run_id: str, previous: str | None) -> bool:
        store = self._services.store
        header = await store.read_header(run_id)
        if header is None:
            return False
        workflows = self._services.workflows
        name = header["workflowName"]
        if name not in workflows or workflows.get(name).definition.recovery != "resume":
            return False
        if previous is None:
            previous = await store.owner_of(run_id)
        self.lease.keep_alive()
        await self.lease.beat()  # alive before it owns the run, so no sweep takes it back
        if not await store.claim_run(run_id, self.lease.owner, previous=previous):
            return True
        recorded, length = await read_run_events(store, run_id)
        if any(event["type"] == "run_end" for event in recorded):
            return False  # ended, not closed: the caller reconciles it
        # The first append (run_resume) is fenced at ``length``: an owner that was only
        # presumed dead and wrote meanwhile keeps the run, and this replay stops.
        self._launch(RunActor(header, self._services, recorded=recorded, stream_length=length))
        return True

    def _launch(self, actor: RunActor) -> None:
        run_id = actor.run_id
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            actor.run(), name=f"flue-run-{run_id}"
        )
        self._actors[run_id] = actor
        self._tasks[run_id] = task
        task.add_done_callback(lambda done: self._finished(run_id, done))
        if self._watch_ended_elsewhere and (self._watch is None or self._watch.done()):
            self._watch = asyncio.get_running_loop().create_task(
                self._stop_runs_ended_elsewhere(), name="flue-ended-elsewhere"
            )

    async def _stop_runs_ended_elsewhere(self) -> None:
        """While runs are hosted here, stop each whose record another writer ended. Only runs
        hosted for a whole interval are read: most runs end sooner, at no cost here."""
        hosted: set[str] = set()
        while self._actors:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            before, hosted = hosted, set(self._actors)
            for run_id in before & hosted:
                try:
                    record = await self._services.store.get_run(run_id)
                except Exception as error:  # the next interval looks again
                    logger.warning("run %s: its record could not be read: %s", run_id, error)
                    continue
                actor = self._actors.get(run_id)
                # An actor writes its own run_end only once its body is done, when cancelling
                # it changes nothing: so a terminal record is, in effect, an end from elsewhere.
                if actor is not None and record is not None and record.is_terminal:
                    logger.info("run %s was ended by another writer; stopping it", run_id)
                    actor.cancel("The run was ended by another writer.")

    def _finished(self, run_id: str, task: asyncio.Task[object]) -> None:
        actor = self._actors.pop(run_id, None)
        self._tasks.pop(run_id, None)
        joiners = self._joiners.pop(run_id, ())
        if joiners:
            record = None if actor is None else actor.record
            outcome: RunRecord | bool = True if record is None else record
            for ended in joiners:
                if not ended.done():
                    ended.set_result(outcome)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, (StreamConflictError, StreamClosedError)):
            # Another writer ended it (a cancellation or recovery elsewhere): the run has its
            # run_end, just not from here.
            logger.info("run %s was ended by another writer", run_id)
        elif error is not None:
            logger.error("run %s could not be ended: %s", run_id, error)

    async def join(self, run_id: str) -> RunRecord | bool:
        ending = self.ending(run_id)
        return False if ending is None else await ending

    def ending(self, run_id: str) -> asyncio.Future[RunRecord | bool] | None:
        """What ``join`` answers for a run hosted here, as a future (``None``: no such run),
        for a caller that awaits many runs without a task each (a Ray host reporting a
        chunk's runs)."""
        task = self._tasks.get(run_id)
        if task is None:
            return None
        # A future resolved by _finished: awaiting it, unlike the task, never cancels the
        # run when the waiter is cancelled, and costs less than asyncio.wait per waiter.
        ended: asyncio.Future[RunRecord | bool] = asyncio.get_running_loop().create_future()
        if task.done():  # ended; _finished has not run yet
            record = self._actors[run_id].record
            ended.set_result(True if record is None else record)
        else:
            self._joiners.setdefault(run_id, []).append(ended)
        return ended

    async def cancel(self, run_id: str, reason: str) -> bool:
        actor = self._actors.get(run_id)
        if actor is None:
            return False
        actor.cancel(reason)
        return True

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def close(self, *, grace_seconds: float | None = None) -> None:
        if self._tasks and (grace_seconds is None or grace_seconds > 0):
            # Still watched meanwhile: a run ended elsewhere stops instead of using the grace.
            await asyncio.wait(set(self._tasks.values()), timeout=grace_seconds)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._tasks:
            await self._interrupt_all()
        await self.lease.stop()

    def _resumable(self, workflow_name: str) -> bool:
        workflows = self._services.workflows
        return (
            workflow_name in workflows
            and workflows.get(workflow_name).definition.recovery == "resume"
        )

    async def _interrupt_all(self) -> None:
        """Stop every run still hosted here. A run whose workflow resumes is left active, its
        events so far written, for whichever process sweeps next (this one restarted, another
        serving the store, or ``runs recover``) to resume by replay once this owner's lease
        has expired. The others are ended as interrupted, as recovery would after a crash, but
        now, so that nothing waits for the lease to expire. The actor's task is cancelled first
        (its harness closes; it writes nothing more), then the run is ended through the fenced
        recovery path, which also finishes any append the actor left in flight."""
        tasks = dict(self._tasks)
        left: set[str] = set()
        for run_id, actor in list(self._actors.items()):
            if run_id in tasks and self._resumable(actor.workflow_name):
                try:
                    await actor.write_pending()
                    left.add(run_id)
                except Exception as error:  # its log may lack events: end it, as before
                    logger.error("run %s: its last events could not be written: %s", run_id, error)
        for task in tasks.values():
            task.cancel()
        for task in tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        services = self._services
        for run_id in tasks:
            if run_id in left:
                logger.warning(
                    "run %s was stopped by the shutdown of its host; the next sweep of the "
                    "store resumes it by replay",
                    run_id,
                )
                continue
            try:
                if await end_interrupted_run(services.store, run_id, services.clock):
                    logger.warning("run %s was interrupted by the shutdown of its host", run_id)
            except Exception as error:  # the lease sweep of another process remains
                logger.error("run %s could not be ended at shutdown: %s", run_id, error)
