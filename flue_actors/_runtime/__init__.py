"""Admission, execution and reading of runs; the backends that host RunActors."""

from .backend import BackendFactory, LocalBackend, RunBackend
from .batch_item import BatchItem
from .discovery import DiscoveredWorkflow, WorkflowRegistry
from .run_actor import RunActor
from .runtime import RunReceipt, Runtime
from .services import RunServices

__all__ = [
    "BackendFactory",
    "BatchItem",
    "DiscoveredWorkflow",
    "LocalBackend",
    "RunActor",
    "RunBackend",
    "RunReceipt",
    "RunServices",
    "Runtime",
    "WorkflowRegistry",
]
