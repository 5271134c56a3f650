"""flue_actors: Flue's workflow model in Python, on Ray.

What a workflow author needs is importable from here; the other audiences have a public package
each: ``flue_actors.client``, ``.gateway``, ``.store``, ``.models``, ``.sandbox``, ``.errors``,
``.testing`` and ``.otel``. Every module with a leading underscore is internal and may change.

What a workflow file needs to define workflows (definitions, errors, records)
loads with the package. The machinery that runs, stores and serves them (runtime, harness,
stores, model providers, HTTP clients) loads on first access to one of its names, so a process
pays only for what it uses: the pytest plugin, loaded by every pytest run in an environment
with this package, and a CLI command that reads a record do not load just-bash, asyncpg or httpx.
"""

from typing import TYPE_CHECKING

from . import _lazy
from ._definitions import (
    ActionContext,
    ActionDefinition,
    AgentConfig,
    AgentContext,
    AgentDefinition,
    AgentProfile,
    CompactionConfig,
    Placement,
    SkillDefinition,
    ToolDefinition,
    WorkflowDefinition,
    define_action,
    define_agent,
    define_agent_profile,
    define_skill,
    define_tool,
    define_workflow,
    load_skill,
)
from ._jsonvalue import UNSET, JsonValue
from ._mcp import MCPTools, mcp_tools
from ._observation import EventContext, Instrumentation, instrument, observe
from ._records import RunPage, RunPointer, RunRecord, RunStatus
from .errors import (
    AbortError,
    ActionInputValidationError,
    ActionOutputSerializationError,
    ActionOutputValidationError,
    DefinitionError,
    DelegationDepthExceededError,
    FlueError,
    IdempotencyKeyConflictError,
    MCPConnectionError,
    ModelNotResolvedError,
    OperationFailedError,
    ResultUnavailableError,
    RunCancelledError,
    RunNotFoundError,
    SessionAlreadyExistsError,
    SessionBusyError,
    SessionNotFoundError,
    SkillDefinitionValidationError,
    SkillNotRegisteredError,
    StreamConflictError,
    SubagentNotDeclaredError,
    ToolNameConflictError,
    WorkflowAdmissionFailedError,
    WorkflowInputSerializationError,
    WorkflowInputUnexpectedError,
    WorkflowLoadError,
    WorkflowNotDiscoveredError,
    WorkflowNotFoundError,
)
from .models._base import ThinkingLevel

if TYPE_CHECKING:
    from ._harness import CallHandle, Harness, PromptResponse, PromptResultResponse, RunLog, Session
    from ._runtime import BatchItem, RunReceipt, Runtime, WorkflowRegistry
    from ._runtime.ambient import invoke
    from ._runtime.ray import RayCluster
    from .client import AsyncFlueClient, FlueApiError, FlueClient, FlueExecutionError
    from .models import (
        ModelBatches,
        ModelProvider,
        ModelRegistry,
        ModelRequest,
        ModelResponse,
        Usage,
    )
    from .store import EventStore, SqliteEventStore, StoredEvent, StreamPage, open_store

__all__ = [
    "UNSET",
    "AbortError",
    "ActionContext",
    "ActionDefinition",
    "ActionInputValidationError",
    "ActionOutputSerializationError",
    "ActionOutputValidationError",
    "AgentConfig",
    "AgentContext",
    "AgentDefinition",
    "AgentProfile",
    "AsyncFlueClient",
    "BatchItem",
    "CallHandle",
    "CompactionConfig",
    "DefinitionError",
    "DelegationDepthExceededError",
    "EventContext",
    "EventStore",
    "FlueApiError",
    "FlueClient",
    "FlueError",
    "FlueExecutionError",
    "Harness",
    "IdempotencyKeyConflictError",
    "Instrumentation",
    "JsonValue",
    "MCPConnectionError",
    "MCPTools",
    "ModelBatches",
    "ModelNotResolvedError",
    "ModelProvider",
    "ModelRegistry",
    "ModelRequest",
    "ModelResponse",
    "OperationFailedError",
    "Placement",
    "PromptResponse",
    "PromptResultResponse",
    "RayCluster",
    "ResultUnavailableError",
    "RunCancelledError",
    "RunLog",
    "RunNotFoundError",
    "RunPage",
    "RunPointer",
    "RunReceipt",
    "RunRecord",
    "RunStatus",
    "Runtime",
    "Session",
    "SessionAlreadyExistsError",
    "SessionBusyError",
    "SessionNotFoundError",
    "SkillDefinition",
    "SkillDefinitionValidationError",
    "SkillNotRegisteredError",
    "SqliteEventStore",
    "StoredEvent",
    "StreamConflictError",
    "StreamPage",
    "SubagentNotDeclaredError",
    "ThinkingLevel",
    "ToolDefinition",
    "ToolNameConflictError",
    "Usage",
    "WorkflowAdmissionFailedError",
    "WorkflowDefinition",
    "WorkflowInputSerializationError",
    "WorkflowInputUnexpectedError",
    "WorkflowLoadError",
    "WorkflowNotDiscoveredError",
    "WorkflowNotFoundError",
    "WorkflowRegistry",
    "define_action",
    "define_agent",
    "define_agent_profile",
    "define_skill",
    "define_tool",
    "define_workflow",
    "instrument",
    "invoke",
    "load_skill",
    "mcp_tools",
    "observe",
    "open_store",
]

_lazy.publish(__name__)

__getattr__ = _lazy.lazy_exports(
    __name__,
    {
        ".client": ("AsyncFlueClient", "FlueApiError", "FlueClient", "FlueExecutionError"),
        "._harness": (
            "CallHandle",
            "Harness",
            "PromptResponse",
            "PromptResultResponse",
            "RunLog",
            "Session",
        ),
        ".models": (
            "ModelBatches",
            "ModelProvider",
            "ModelRegistry",
            "ModelRequest",
            "ModelResponse",
            "Usage",
        ),
        "._runtime": ("BatchItem", "RunReceipt", "Runtime", "WorkflowRegistry"),
        "._runtime.ambient": ("invoke",),
        "._runtime.ray": ("RayCluster",),
        ".store": ("EventStore", "SqliteEventStore", "StoredEvent", "StreamPage", "open_store"),
    },
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
