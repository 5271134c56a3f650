"""Connecting to Ray, or starting a private local instance, and keeping it on loopback.

The only module (with ``host.py`` and ``backend.py``) that imports Ray. Ray is imported lazily
so that the local runtime, the CLI and the gateway never pay for it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any, Final

from ...errors import FlueRunError

__all__ = [
    "NAMESPACE",
    "RayClusterUnavailableError",
    "connect",
    "loopback_environment",
    "shared_actor",
]

NAMESPACE: Final = "flue_actors"

# What keeps a private Ray instance on this machine's loopback interface (tests, benchmarks,
# `flue-actors serve --backend ray` without --address):
# - Ray replaces 127.0.0.1 in an address by the machine's outward address unless it believes
#   clusters are off (this flag, read when ray is imported);
# - with the dashboard off, Ray still starts a usage-stats module that asks cloud metadata
#   servers (169.254.169.254) where it runs, through `requests`: a proxy on a closed loopback
#   port makes those requests fail on the spot, and loopback itself bypasses it;
# - usage stats off.
_LOOPBACK: Final = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost,::1",
}


class RayClusterUnavailableError(FlueRunError):
    type = "ray_cluster_unavailable"

    def __init__(self, *, address: str, reason: str) -> None:
        super().__init__(
            f"No Ray cluster could be reached at {address}: {reason}",
            details="Start one with `ray start --head`, or pass the address it printed.",
        )


def loopback_environment() -> dict[str, str]:
    """The variables that keep a private Ray instance on loopback (set before importing ray)."""
    return dict(_LOOPBACK)


def _reachable(address: str) -> str | None:
    """Why ``host:port`` cannot be reached, or ``None`` if something listens there."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return "it is not of the form host:port"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return None
    except OSError as error:
        return str(error)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # As Ray's own driver handler, an exit that runs atexit (ray.shutdown, which stops a
    # private instance), but with the shell's code for a signal: 143, as the CLI documents.
    sys.exit(128 + signum)


def _init(ray: Any, **options: Any) -> None:
    """``ray.init``, keeping a SIGTERM exit status of 128 + 15 (Ray's handler exits with 15)."""
    ray.init(**options)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def connect(address: str | None, *, num_cpus: int | None = None) -> Any:
    """Attach to the cluster at ``address`` (``"auto"``: the one ``ray start`` made here), or
    with ``None`` start a private instance bound to 127.0.0.1 that ends with this process.
    Returns the ``ray`` module."""
    if address is None:
        for name, value in _LOOPBACK.items():
            os.environ.setdefault(name, value)
    elif address != "auto":
        why = _reachable(address)
        if why is not None:
            raise RayClusterUnavailableError(address=address, reason=why)
    import ray

    if ray.is_initialized():
        return ray
    if address is None:
        _init(
            ray,
            address="local",
            namespace=NAMESPACE,
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
        return ray
    try:
        _init(
            ray,
            address=address,
            namespace=NAMESPACE,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError) as error:
        raise RayClusterUnavailableError(address=address, reason=str(error)) from None
    return ray


def shared_actor(cls: type, name: str, *args: Any, max_concurrency: int) -> Any:
    """The async actor ``name`` of this project's namespace, made from ``cls(*args)`` if it
    does not exist yet: one per cluster, whichever host or driver asks first (a deployment's
    batch collector or rate-limit budget). Detached, so it outlives whoever made it, and
    without a CPU of its own, so it never waits for room on a busy node."""
    import ray

    return (
        ray.remote(cls)
        .options(
            name=name,
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            max_concurrency=max_concurrency,
            num_cpus=0,
        )
        .remote(*args)
    )
