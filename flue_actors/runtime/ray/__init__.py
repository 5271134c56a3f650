"""The Ray backend: RunActors hosted in RunHosts on a Ray cluster. Importing this imports Ray."""

from .backend import RayBackend
from .environment import NAMESPACE, RayClusterUnavailableError, connect, loopback_environment
from .host import HostConfig, RunHost

__all__ = [
    "NAMESPACE",
    "HostConfig",
    "RayBackend",
    "RayClusterUnavailableError",
    "RunHost",
    "connect",
    "loopback_environment",
]
