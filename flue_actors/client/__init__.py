"""Clients of the gateway's HTTP protocol (the Python twin of Flue's ``@flue/sdk``)."""

from .. import _lazy
from ._async_client import AsyncFlueClient, AsyncRunEventStream
from ._protocol import FlueApiError, FlueExecutionError, Invocation, LiveMode, WorkflowRun
from ._sync_client import FlueClient, RunEventStream

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

_lazy.publish(__name__)
