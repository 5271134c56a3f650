"""A deployment: the workflows' code and the configuration a serve runs them with.

Hosts belong to one deployment and run exactly its code and configuration. Its id is
``<lineage>-<fingerprint>``: the lineage names the store and workflows folder (what a serve
replaces when it restarts), the fingerprint hashes everything that changes behaviour (every file
under the folder, the model override, the non-secret ``FLUE_*`` settings, the package version).
Two serves of the same deployment share hosts; a serve of a new one, once its hosts are ready,
records itself as its lineage's current deployment in Ray's cluster-wide key-value store, and
hosts of any other deployment of that lineage drain and exit.

Secrets never enter a deployment: the store URL goes to hosts without its password, and
credentials (``ANTHROPIC_API_KEY``, ...) are read by hosts from their node's environment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import FlueRunError
from ...models import RateLimits
from ...models._message_batches import ModelBatches
from ...store import is_sqlite_url

__all__ = [
    "Deployment",
    "HostDrainingError",
    "current_deployment",
    "host_database_url",
    "mark_current",
    "strip_password",
]

# Where the configuration comes from rather than what it does; the store URL is hashed apart.
_NOT_SETTINGS: Final = frozenset({"FLUE_DATABASE_URL", "FLUE_RAY_ADDRESS"})
# FLUE_* variables named like these stay on the nodes, as credentials do (a URL may carry a
# password: the store's is handled apart, without it).
_SECRET_NAME: Final = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL|AUTH|URL|DSN", re.IGNORECASE)
_PASSWORD_PARAMS: Final = frozenset({"password", "sslpassword"})
_KV_NAMESPACE: Final = "flue_actors"
_SKIPPED_PARTS: Final = frozenset({"__pycache__"})


class HostDrainingError(FlueRunError):
    type = "host_draining"

    def __init__(self, *, host: str, deployment: str) -> None:
        super().__init__(
            f"Host {host} belongs to deployment {deployment}, which is draining: it finishes its "
            "runs and takes no new ones.",
            details="A newer serve of these workflows replaced it (or `flue-actors hosts stop` "
            "retired it): send runs to the serve that is current.",
        )


def strip_password(url: str) -> str:
    """``url`` without its password (user info, ``password=``/``sslpassword=`` parameters)."""
    if is_sqlite_url(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _PASSWORD_PARAMS for key, _ in pairs):
        query = urlencode([(k, v) for k, v in pairs if k.lower() not in _PASSWORD_PARAMS])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def host_database_url(given: str, node_environ: Mapping[str, str]) -> str:
    """The URL a host opens: the password-free ``given``, completed by the node's own
    ``FLUE_DATABASE_URL`` when that names the same database (else the driver's own sources,
    ``PGPASSWORD`` or ``~/.pgpass``, supply the password)."""
    node = node_environ.get("FLUE_DATABASE_URL")
    if node and strip_password(node) == given:
        return node
    return given


def settings_of(environ: Mapping[str, str]) -> dict[str, str]:
    """The non-secret ``FLUE_*`` settings of a serve's environment."""
    return {
        name: value
        for name, value in sorted(environ.items())
        if name.startswith("FLUE_") and name not in _NOT_SETTINGS and not _SECRET_NAME.search(name)
    }


def _digest(parts: list[str | bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))  # unambiguous boundaries
        digest.update(data)
    return digest.hexdigest()


def _code_files(directory: Path) -> list[Path]:
    """Every file a workflow can read or import from its folder: not bytecode caches, nor
    hidden files (an editor's swap file, .DS_Store)."""

    def kept(path: Path) -> bool:
        parts = path.relative_to(directory).parts
        hidden = any(part.startswith(".") for part in parts)
        return not hidden and not _SKIPPED_PARTS.intersection(parts) and path.suffix != ".pyc"

    return sorted(path for path in directory.rglob("*") if path.is_file() and kept(path))


def _package_version() -> str:
    try:
        return metadata.version("flue-actors")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


@dataclass(frozen=True)
class Deployment:
    """What hosts run: plain values that cross process boundaries (no secrets among them)."""

    id: str
    lineage: str
    database_url: str
    workflows_dir: str
    model: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    # Its hosts' model turns go through the Message Batches API, by way of one collector of
    # the cluster (named after the deployment: serves of one deployment share it).
    model_batches: ModelBatches | None = None
    # Its hosts' model calls are paced by one budget of the cluster (named after it).
    rate_limits: RateLimits | None = None

    @property
    def batch_collector(self) -> str | None:
        """The name of the collector its hosts share, if it batches model turns."""
        return None if self.model_batches is None else self.id

    @property
    def rate_limiter(self) -> str | None:
        """The name of the rate-limit budget its hosts share, if it has limits."""
        return None if self.rate_limits is None else self.id

    def collector_for(self, settings: ModelBatches) -> str:
        """The name of the collector its hosts share for the turns of runs batched with
        ``settings`` (a batch's own, ``runtime.batch(..., model_batches=)``): the deployment's
        own collector for its own settings, else one per settings."""
        return self.id if settings == self.model_batches else f"{self.id}-{settings.digest}"

    @classmethod
    def of(
        cls,
        workflows_dir: Path | str,
        *,
        database_url: str,
        model: str | None,
        environ: Mapping[str, str],
        model_batches: ModelBatches | None = None,
        rate_limits: RateLimits | None = None,
    ) -> Deployment:
        directory = Path(workflows_dir).resolve()
        url = strip_password(database_url)
        lineage = _digest([url, str(directory)])[:8]
        settings = settings_of(environ)
        parts: list[str | bytes] = [lineage, model or "", _package_version()]
        for name, value in settings.items():
            parts += [name, value]
        if model_batches is not None:
            # A serve that batches never shares hosts with one that does not, nor with one
            # batching over another window.
            batching = asdict(model_batches)
            del batching["sleep"]  # how a test waits, not what the hosts do
            parts += ["model_batches", repr(sorted(batching.items()))]
        if rate_limits is not None:
            # Other limits, another budget: never the hosts of a deployment with other limits.
            parts += ["rate_limits", repr(rate_limits)]
        for path in _code_files(directory):
            parts += [path.relative_to(directory).as_posix(), path.read_bytes()]
        return cls(
            id=f"{lineage}-{_digest(parts)[:12]}",
            lineage=lineage,
            database_url=url,
            workflows_dir=str(directory),
            model=model,
            settings=settings,
            model_batches=None if model_batches is None else replace(model_batches, sleep=None),
            rate_limits=rate_limits,
        )


def _kv_key(lineage: str) -> bytes:
    return f"deployment/{lineage}".encode()


def mark_current(deployment: Deployment, generation: int) -> None:
    """Record ``deployment`` as its lineage's current one, cluster-wide, as of ``generation``
    (see :func:`current_deployment`). Needs a connected Ray: the key-value store is the
    cluster's."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(
        _kv_key(deployment.lineage),
        f"{generation} {deployment.id}".encode(),
        overwrite=True,
        namespace=_KV_NAMESPACE,
    )


def current_deployment(lineage: str) -> tuple[int, str] | None:
    """The lineage's current deployment as ``(generation, id)``, or ``None`` if none was
    recorded. A serve starts its hosts at the next generation and records itself only once they
    are ready, so hosts of a deployment that is about to become current are never mistaken for
    superseded ones, and a serve that fails to start leaves the running deployment alone."""
    from ray.experimental import internal_kv

    value = internal_kv._internal_kv_get(_kv_key(lineage), namespace=_KV_NAMESPACE)
    if value is None:
        return None
    generation, _, deployment = bytes(value).decode().partition(" ")
    return int(generation), deployment
