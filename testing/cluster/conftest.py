"""The README's cluster recipe on two "machines": network namespaces on this host.

One cluster per module, built as an operator would: a throwaway PostgreSQL server on the bridge
the machines share, ``ray start --head`` in the head machine, ``ray start --address`` in the
worker machine, and ``flue-actors serve --address`` on the head with ``FLUE_DATABASE_URL``
pointing at that server. The test process stays in the root namespace and talks to the gateway
over the bridge.

Teardown kills every process in both machines (Ray's and the server's), deletes them and the
bridge, and stops PostgreSQL, whether the tests passed or not; a SIGTERM to pytest becomes a
KeyboardInterrupt so that teardown still runs, and anything a SIGKILLed run left behind is removed
by the next one (:func:`~.netns.remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Final

import httpx
import pytest

from flue_actors._runtime.ray.environment import loopback_environment
from flue_actors.client import FlueClient

from .netns import Machine, Network, NetworkUnavailableError, remove_stale
from .postgres import (
    PostgresUnavailableError,
    ThrowawayPostgres,
    find_binaries,
    remove_stale_servers,
)

__all__ = ["BIN", "WHEREAMI", "Cluster", "node_environment"]

_REPO: Final = Path(__file__).resolve().parents[2]
BIN: Final = Path(sys.executable).parent
RAY_PORT: Final = 6379
GATEWAY_PORT: Final = 8000
# serve's lease and sweep on the head (at least 3 s: see serve --lease-seconds).
LEASE_SECONDS: Final = 4.0
SWEEP_SECONDS: Final = 1.0
_START_TIMEOUT: Final = 120.0

# The slow workflow: sleeps, then says which machine ran it.
WHEREAMI: Final = '''\
"""Sleeps for input.seconds, then returns the address of the Ray node that ran it."""

import asyncio

from pydantic import BaseModel

from flue_actors import ActionContext, define_agent, define_workflow


class WhereInput(BaseModel):
    seconds: float = 0.0


@define_workflow(agent=define_agent(model="fake/echo"))
async def whereami(ctx: ActionContext[WhereInput]) -> dict[str, str]:
    import ray

    await asyncio.sleep(ctx.input.seconds)
    return {"node": ray.util.get_node_ip_address()}


async def route() -> None:
    """HTTP exposure of POST /workflows/whereami: every request is allowed."""


async def runs() -> None:
    """HTTP exposure of /runs/<runId> for whereami runs: every request is allowed."""
'''


def node_environment(**extra: str) -> dict[str, str]:
    """The environment of every process on a cluster machine.

    The loopback variables (usage stats off, a dead proxy that stops Ray's cloud-metadata
    probe), except the one that tells Ray clusters are off: with it, ``ray start --address``
    refuses to join ("Multi-node Ray clusters are not supported"). Nothing of the test process's
    own Ray or Flue settings leaks in (the Ray test folder sets them process-wide).
    """
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RAY_", "FLUE_")) and name.lower() not in _PROXIES
    }
    loopback = loopback_environment()
    loopback.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    environment.update(loopback)
    # A private test cluster on a network nobody else is on.
    environment["RAY_AUTH_MODE"] = "disabled"
    # The head's GCS checks each node every second (Ray's default: every 3 s, dead after 5
    # failures): a killed machine is declared dead in about 5 s instead of 15, which is what
    # the node-death test waits for. A slow but live node still has Ray's 10 s per check.
    environment["RAY_health_check_period_ms"] = "1000"
    environment["FLUE_MODEL"] = "fake/echo"
    environment.update(extra)
    return environment


_PROXIES: Final = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}


def gateway_client(base_url: str) -> FlueClient:
    # An explicit transport: httpx would otherwise take HTTP_PROXY from this process's
    # environment, which the Ray tests point at a dead port.
    return FlueClient(base_url, timeout=30.0, transport=httpx.HTTPTransport())


@dataclass
class Cluster:
    network: Network
    postgres: ThrowawayPostgres
    folder: Path
    serve: subprocess.Popen[bytes]
    # Seconds each step of the setup took, for the record (printed with -s).
    timings: dict[str, float]

    @property
    def head(self) -> Machine:
        return self.network["head"]

    @property
    def worker(self) -> Machine:
        return self.network["worker"]

    @property
    def ray_address(self) -> str:
        return f"{self.head.address}:{RAY_PORT}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.head.address}:{GATEWAY_PORT}"

    @property
    def project(self) -> Path:
        return self.folder / "project"

    def client(self) -> FlueClient:
        return gateway_client(self.gateway_url)

    def serve_log(self) -> str:
        return _tail(self.folder / "serve.log")


def _tail(path: Path, limit: int = 6000) -> str:
    if not path.exists():
        return "(no log)"
    return path.read_text(errors="replace")[-limit:]


def _ray_start(machine: Machine, folder: Path, *args: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        machine.command(
            str(BIN / "ray"),
            "start",
            *args,
            f"--node-ip-address={machine.address}",
            "--disable-usage-stats",
            "--num-cpus=1",
            f"--object-store-memory={100 * 1024 * 1024}",
            f"--temp-dir={folder / ('ray-' + machine.namespace.rsplit('-', 1)[-1])}",
        ),
        env=node_environment(),
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, (
        f"ray start {' '.join(args)} in {machine.namespace} failed after "
        f"{time.monotonic() - started:.1f} s:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def _wait_for_port(address: str, port: int, starting: Future[None]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not starting.done():
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        assert time.monotonic() < deadline, f"nothing listens on {address}:{port}"
        time.sleep(0.1)
    starting.result()  # it ended: if it failed, say why


def _wait_for_gateway(cluster: Cluster) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    with httpx.Client(transport=httpx.HTTPTransport(), timeout=2.0) as http:
        while True:
            if cluster.serve.poll() is not None:
                raise AssertionError(
                    f"flue-actors serve exited with {cluster.serve.returncode}:\n"
                    + cluster.serve_log()
                )
            with contextlib.suppress(httpx.TransportError):
                if http.get(cluster.gateway_url + "/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"flue-actors serve did not answer within {_START_TIMEOUT} s:\n"
                    + cluster.serve_log()
                )
            time.sleep(0.2)


@contextlib.contextmanager
def _teardown_on_sigterm() -> Iterator[None]:
    """SIGTERM (a CI timeout, say) interrupts the tests like Ctrl-C, so finalizers run."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _remove_stale_folders() -> None:
    """The folders of cluster test processes that were killed before their teardown."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        owner = folder.name.removeprefix(_FOLDER_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)


_FOLDER_PREFIX: Final = "flue-cluster-"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    remove_stale()
    remove_stale_servers()
    _remove_stale_folders()
    network: Network | None = None
    postgres: ThrowawayPostgres | None = None
    folder: Path | None = None
    serve: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = {}
    with _teardown_on_sigterm(), ThreadPoolExecutor(max_workers=2) as background:
        try:
            step = time.monotonic()
            try:
                network = Network.create(["head", "worker"])
            except NetworkUnavailableError as error:
                pytest.skip(f"cannot create network namespaces here: {error}")
            timings["machines"] = time.monotonic() - step
            try:
                find_binaries()
                pwd.getpwnam("postgres")
            except (PostgresUnavailableError, KeyError) as error:
                pytest.skip(f"cannot start a PostgreSQL server of the test's own: {error!r}")
            postgres = ThrowawayPostgres(address=network.gateway, clients=network.subnet)
            # The server starts while the head does: both take seconds, on other processes.
            postgres_started = background.submit(postgres.start)

            folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-"))
            workflows = folder / "project" / "workflows"
            workflows.mkdir(parents=True)
            shutil.copy(_REPO / "workflows" / "summarize.py", workflows / "summarize.py")
            (workflows / "whereami.py").write_text(WHEREAMI, encoding="utf-8")

            head, worker = network["head"], network["worker"]
            step = time.monotonic()
            head_started = background.submit(
                _ray_start,
                head,
                folder,
                "--head",
                f"--port={RAY_PORT}",
                "--include-dashboard=false",
            )
            # The worker joins as soon as the head's GCS listens (it waits for the rest itself):
            # both starts take seconds of mostly waiting, so they overlap.
            _wait_for_port(head.address, RAY_PORT, head_started)
            _ray_start(worker, folder, f"--address={head.address}:{RAY_PORT}")
            head_started.result()
            postgres_started.result()
            timings["ray start, both machines"] = time.monotonic() - step

            step = time.monotonic()
            with (folder / "serve.log").open("wb") as log:
                serve = subprocess.Popen(
                    head.command(
                        str(BIN / "flue-actors"),
                        "serve",
                        f"--address={head.address}:{RAY_PORT}",
                        f"--host={head.address}",
                        f"--port={GATEWAY_PORT}",
                        f"--workflows={workflows}",
                        # Orphans are taken over within 5 s, not 15 (the default lease 10 s,
                        # sweep 5 s): the machine-kill test waits for exactly that.
                        f"--lease-seconds={LEASE_SECONDS:g}",
                        f"--sweep-seconds={SWEEP_SECONDS:g}",
                    ),
                    cwd=folder / "project",
                    env=node_environment(FLUE_DATABASE_URL=postgres.url),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            made = Cluster(
                network=network, postgres=postgres, folder=folder, serve=serve, timings=timings
            )
            _wait_for_gateway(made)
            timings["flue-actors serve"] = time.monotonic() - step
            print("\ncluster setup:", ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
            yield made
        finally:
            # Machines first (Ray, the gateway: every client of the server), then the server,
            # then the files they wrote.
            problems = network.destroy() if network is not None else []
            if serve is not None:
                serve.wait(timeout=10)
            if postgres is not None:
                postgres.stop()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            assert not problems, f"cluster teardown left state behind: {problems}"
