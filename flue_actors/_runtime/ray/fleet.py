"""The RunHosts on a cluster as an operator sees them: list them, drain them, or kill them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from .backend import HOST_PREFIX, RUN_PREFIX
from .environment import NAMESPACE

__all__ = ["HostView", "list_hosts", "stop_hosts"]

# A host that does not answer this fast (restarting, or its node lost) is shown unreachable.
ANSWER_SECONDS: Final = 10.0


@dataclass(frozen=True)
class HostView:
    name: str
    deployment: str | None
    node_id: str | None
    pid: int | None
    active: int | None
    state: str  # serving, draining, retiring, or unreachable
    dedicated: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _is_host(actor: dict[str, str]) -> bool:
    return actor["namespace"] == NAMESPACE and actor["name"].startswith((HOST_PREFIX, RUN_PREFIX))


def _deployment_in(name: str) -> str | None:
    """``flue-host-<lineage>-<fingerprint>-<node>-<index>`` names its deployment."""
    if not name.startswith(HOST_PREFIX):
        return None
    parts = name.removeprefix(HOST_PREFIX).split("-")
    return "-".join(parts[:2]) if len(parts) == 4 else None


def list_hosts(ray: Any, *, timeout: float = ANSWER_SECONDS) -> list[HostView]:
    """Every host (and dedicated run actor) of flue_actors on the cluster, by name."""
    handles: dict[str, Any] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if _is_host(actor):
            try:
                handles[actor["name"]] = ray.get_actor(actor["name"], namespace=NAMESPACE)
            except ValueError:
                continue  # exited meanwhile
    answers = {name: handle.describe.remote() for name, handle in handles.items()}
    if answers:
        ray.wait(list(answers.values()), num_returns=len(answers), timeout=timeout)
    views = []
    for name in sorted(answers):
        try:
            info = ray.get(answers[name], timeout=0)
        except Exception:  # no answer in time, or the actor died: say so, do not fail the list
            dedicated = name.startswith(RUN_PREFIX)
            views.append(
                HostView(name, _deployment_in(name), None, None, None, "unreachable", dedicated)
            )
            continue
        views.append(
            HostView(
                name=name,
                deployment=info["deployment"],
                node_id=info["node_id"],
                pid=info["pid"],
                active=info["active"],
                state=info["state"],
                dedicated=info["dedicated"],
            )
        )
    return views


def stop_hosts(
    ray: Any, names: list[str], *, now: bool, timeout: float = ANSWER_SECONDS
) -> dict[str, Literal["draining", "killed", "gone"]]:
    """Drain each host (it finishes its runs, takes none, then exits), or with ``now`` kill it
    (its runs end as interrupted: at once through the serve that placed them, else by the lease
    sweep)."""
    outcome: dict[str, Literal["draining", "killed", "gone"]] = {}
    answers = {}
    for name in names:
        try:
            handle = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            outcome[name] = "gone"
            continue
        if now:
            ray.kill(handle, no_restart=True)
            outcome[name] = "killed"
        else:
            answers[name] = handle.drain.remote()
            outcome[name] = "draining"
    if answers:
        ray.wait(list(answers.values()), num_returns=len(answers), timeout=timeout)
    return outcome
