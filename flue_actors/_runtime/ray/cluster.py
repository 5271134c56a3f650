"""The Ray backend as a Runtime is given it: which cluster, and how many hosts on each node."""

from __future__ import annotations

from dataclasses import dataclass

from ...models import RateLimits
from ..backend import RunBackend
from ..services import RunServices

__all__ = ["RayCluster"]


@dataclass(frozen=True, slots=True)
class RayCluster:
    """Run on a Ray cluster: ``Runtime("workflows", store=url, backend=RayCluster(address))``.

    ``address`` is the cluster to attach to (``"auto"`` for the one ``ray start`` made on this
    machine, ``"host:port"`` for another), or ``None`` for a private local Ray instance that ends
    with the process. The runtime's store must be a URL every host can open, and its workflows
    a discovered folder every host loads; hosts take their model from ``FLUE_MODEL``.

    ``rate_limits`` pace the model calls of every host through one budget of the cluster,
    shared with every runtime of the same workflows and limits (a named Ray actor, taken by
    hosts in slices); a 429 or 529 on any host slows them all down.
    """

    address: str | None = None
    hosts_per_node: int = 1
    num_cpus: int | None = None
    rate_limits: RateLimits | None = None

    def __call__(
        self, services: RunServices, *, database_url: str | None, models_given: bool
    ) -> RunBackend:
        if database_url is None:
            raise ValueError("The Ray backend needs the store as a URL that every host can open.")
        if models_given:
            raise ValueError("The Ray backend takes its model from FLUE_MODEL, not a registry.")
        from .backend import RayBackend

        return RayBackend(
            services,
            database_url=database_url,
            address=self.address,
            model=services.env.get("FLUE_MODEL"),
            model_batches=services.models.model_batches,
            hosts_per_node=self.hosts_per_node,
            num_cpus=self.num_cpus,
            rate_limits=self.rate_limits if self.rate_limits and self.rate_limits.any else None,
        )
