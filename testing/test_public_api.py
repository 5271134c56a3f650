"""The public namespace is deliberate: adding or removing a name must change this test."""

from __future__ import annotations

import flue_actors
import flue_actors.testing

PUBLIC = [
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

TESTING = [
    "AnthropicApi",
    "AnthropicApiExhaustedError",
    "EventStoreContract",
    "FakeFailure",
    "FakeModel",
    "FakeModelExhaustedError",
    "FakeToolCall",
    "FakeTurn",
    "FlueTestKit",
    "MessageBatches",
    "RecordingSink",
    "ReplayMismatchError",
    "Responder",
    "RunResult",
]


def test_public_names_are_pinned() -> None:
    assert flue_actors.__all__ == PUBLIC


def test_testing_names_are_pinned() -> None:
    assert flue_actors.testing.__all__ == TESTING


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(flue_actors, name) is not None, name
    for name in TESTING:
        assert getattr(flue_actors.testing, name) is not None, name
