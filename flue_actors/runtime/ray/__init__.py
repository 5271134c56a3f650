"""The Ray backend: RunActors hosted in RunHosts on a Ray cluster. Importing this imports Ray."""

from .backend import RayBackend
from .cluster import RayCluster
from .deployment import Deployment, HostDrainingError
from .environment import NAMESPACE, RayClusterUnavailableError, connect, loopback_environment
from .host import HostConfig, RunHost

__all__ = [
    "NAMESPACE",
    "Deployment",
    "HostConfig",
    "HostDrainingError",
    "RayBackend",
    "RayCluster",
    "RayClusterUnavailableError",
    "RunHost",
    "connect",
    "loopback_environment",
]
