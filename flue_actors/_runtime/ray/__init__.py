"""The Ray backend: RunActors hosted in RunHosts on a Ray cluster. Importing this imports Ray."""

from .backend import RayBackend
from .cluster import RayCluster
from .deployment import Deployment, HostDrainingError
from .environment import NAMESPACE, RayClusterUnavailableError, connect, loopback_environment
from .host import HostConfig, RunHost
from .turn_batcher import RayTurnBatcher

__all__ = [
    "NAMESPACE",
    "Deployment",
    "HostConfig",
    "HostDrainingError",
    "RayBackend",
    "RayCluster",
    "RayClusterUnavailableError",
    "RayTurnBatcher",
    "RunHost",
    "connect",
    "loopback_environment",
]
