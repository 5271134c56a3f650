"""Clients of the gateway's HTTP protocol (the Python twin of Flue's ``@flue/sdk``)."""

from .async_client import AsyncFlueClient, AsyncRunEventStream
from .protocol import FlueApiError, FlueExecutionError, Invocation, LiveMode, WorkflowRun
from .sync_client import FlueClient, RunEventStream

__all__ = [
    "AsyncFlueClient",
    "AsyncRunEventStream",
    "FlueApiError",
    "FlueClient",
    "FlueExecutionError",
    "Invocation",
    "LiveMode",
    "RunEventStream",
    "WorkflowRun",
]
