"""Idempotency keys: which run a key of a workflow admitted, and with what input.

A key is claimed in the transaction that admits its run (``EventStore.admit_runs``), so two
admissions racing with one key make one run. The input is kept as a fingerprint, a hash of its
canonical JSON, so a repeated key can be told from a key reused for other input.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from .._events import RunAdmittedEvent
from .._jsonvalue import UNSET, JsonValue, Unset

__all__ = ["MAX_KEY_LENGTH", "KeyedRun", "input_fingerprint", "keyed_claim"]

MAX_KEY_LENGTH: Final = 255


@dataclass(frozen=True, slots=True)
class KeyedRun:
    """The run an idempotency key admitted, and the fingerprint of that run's input."""

    run_id: str
    fingerprint: str


def input_fingerprint(value: JsonValue | Unset) -> str:
    """The same for equal JSON values whatever their key order; distinct for no input."""
    if value is UNSET:
        return "none"
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def keyed_claim(header: RunAdmittedEvent) -> tuple[str, str, str] | None:
    """``(workflow, key, fingerprint)`` for a header that carries a key, else ``None``."""
    key = header.get("idempotencyKey")
    if key is None:
        return None
    return header["workflowName"], key, input_fingerprint(header.get("input", UNSET))
