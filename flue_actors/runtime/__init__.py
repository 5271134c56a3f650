"""Admission, execution and reading of runs; the backends that host RunActors."""

from .backend import LocalBackend, RunBackend
from .discovery import DiscoveredWorkflow, WorkflowRegistry
from .run_actor import RunActor
from .runtime import RunReceipt, Runtime
from .services import RunServices

__all__ = [
    "DiscoveredWorkflow",
    "LocalBackend",
    "RunActor",
    "RunBackend",
    "RunReceipt",
    "RunServices",
    "Runtime",
    "WorkflowRegistry",
]
