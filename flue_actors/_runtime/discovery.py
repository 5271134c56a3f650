"""Finding workflows: ``workflows/<name>.py`` files, or definitions handed over in code.

A module is one workflow, named after its file. It defines the workflow as a module-level value
(named ``workflow`` if the module holds more than one definition) and may export ``route`` and
``runs``, the HTTP exposure dependencies. A module that fails to import fails only its own
workflow: the error is kept and raised whenever that workflow is asked for.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._definitions import AgentProfile, WorkflowDefinition
from ..errors import WorkflowLoadError, WorkflowNotFoundError

__all__ = ["DiscoveredWorkflow", "WorkflowRegistry", "load_workflow_module"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class DiscoveredWorkflow:
    name: str
    definition: WorkflowDefinition
    route: Callable[..., Any] | None = None
    runs: Callable[..., Any] | None = None
    path: Path | None = None


def _pick_definition(name: str, module: Any) -> WorkflowDefinition:
    named = getattr(module, "workflow", None)
    if isinstance(named, WorkflowDefinition):
        return named
    found: list[tuple[str, WorkflowDefinition]] = []
    for attribute, value in vars(module).items():
        if isinstance(value, WorkflowDefinition) and all(value is not d for _, d in found):
            found.append((attribute, value))
    if len(found) == 1:
        return found[0][1]
    if not found:
        raise WorkflowLoadError(
            name=name, reason="the module does not define a workflow with define_workflow(...)"
        )
    names = ", ".join(attribute for attribute, _ in found)
    raise WorkflowLoadError(
        name=name,
        reason=f"the module defines {len(found)} workflows ({names}); name the one to serve "
        "`workflow`",
    )


def _import(path: Path) -> Any:
    """Import a workflow file under its natural name (``workflows.summarize``) when that name
    leads to this file, so the definition a test imports is the one the runtime serves;
    otherwise under a private name."""
    package = path.parent.name
    if package.isidentifier():
        natural = f"{package}.{path.stem}"
        try:
            module = importlib.import_module(natural)
        except ModuleNotFoundError as error:
            if error.name not in (package, natural):
                raise
        else:
            if Path(getattr(module, "__file__", "") or "").resolve() == path.resolve():
                return module
    module_name = f"flue_workflows.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_workflow_module(path: Path) -> DiscoveredWorkflow:
    """Import one workflow file. Any failure becomes a :class:`WorkflowLoadError`."""
    name = path.stem
    try:
        module = _import(path)
    except Exception as error:
        raise WorkflowLoadError(
            name=name, reason=f"{type(error).__name__}: {error}", path=str(path)
        ) from error
    definition = _pick_definition(name, module)
    route, runs = getattr(module, "route", None), getattr(module, "runs", None)
    return DiscoveredWorkflow(
        name=name,
        definition=definition,
        route=route if callable(route) else None,
        runs=runs if callable(runs) else None,
        path=path,
    )


class WorkflowRegistry:
    """The workflows a runtime serves, by name and by definition identity."""

    def __init__(
        self,
        workflows: Iterable[DiscoveredWorkflow] = (),
        *,
        failures: Mapping[str, WorkflowLoadError] | None = None,
        directory: Path | None = None,
    ) -> None:
        self._by_name = {workflow.name: workflow for workflow in workflows}
        self._failures = dict(failures or {})
        self.directory = directory

    @classmethod
    def from_definitions(
        cls, definitions: Mapping[str, WorkflowDefinition | DiscoveredWorkflow]
    ) -> WorkflowRegistry:
        entries = []
        for name, value in definitions.items():
            if isinstance(value, DiscoveredWorkflow):
                entries.append(value)
            elif isinstance(value, WorkflowDefinition):
                entries.append(DiscoveredWorkflow(name=name, definition=value))
            else:
                raise TypeError(f"workflow {name!r} is not a define_workflow() value")
        return cls(entries)

    @classmethod
    def discover(cls, directory: str | Path) -> WorkflowRegistry:
        """Load every ``*.py`` in ``directory`` (files starting with ``_`` are helpers)."""
        root = Path(directory).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"workflow directory {root} does not exist")
        # Workflows may import their project's own modules, as they would when run directly.
        project = str(root.parent)
        if project not in sys.path:
            sys.path.insert(0, project)
        found: list[DiscoveredWorkflow] = []
        failures: dict[str, WorkflowLoadError] = {}
        for path in sorted(root.glob("*.py")):
            if path.name.startswith("_"):
                continue
            if not _NAME.match(path.stem):
                failures[path.stem] = WorkflowLoadError(
                    name=path.stem, reason="a workflow name may hold letters, digits, - and _ only"
                )
                continue
            try:
                found.append(load_workflow_module(path))
            except WorkflowLoadError as error:
                failures[path.stem] = error
        return cls(found, failures=failures, directory=root)

    def register(self, workflow: DiscoveredWorkflow) -> None:
        """Add a workflow. A name already taken by a different definition is refused."""
        existing = self._by_name.get(workflow.name)
        if existing is not None and existing.definition is not workflow.definition:
            raise ValueError(f"a different workflow is already registered as {workflow.name!r}")
        self._failures.pop(workflow.name, None)
        self._by_name[workflow.name] = workflow

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    @property
    def failures(self) -> dict[str, WorkflowLoadError]:
        return dict(self._failures)

    def declared_models(self) -> set[str]:
        """The models these workflows' agents name up front (``define_agent(model=...)`` and
        their subagents' profiles): an agent made by an initializer names its model per run,
        so it adds none."""
        models: set[str] = set()
        profiles: list[AgentProfile] = []
        for workflow in self._by_name.values():
            config = workflow.definition.agent.config
            if config is not None:
                models.add(config.model)
                profiles.extend(config.subagents)
        seen: set[int] = set()
        while profiles:
            profile = profiles.pop()
            if id(profile) in seen:
                continue
            seen.add(id(profile))
            if profile.model is not None:
                models.add(profile.model)
            profiles.extend(profile.subagents)
        return models

    def get(self, name: str) -> DiscoveredWorkflow:
        """The workflow called ``name``; its load error if it failed to load."""
        workflow = self._by_name.get(name)
        if workflow is not None:
            return workflow
        failure = self._failures.get(name)
        if failure is not None:
            raise failure
        raise WorkflowNotFoundError(name=name, available=self.names)

    def find(self, definition: WorkflowDefinition) -> DiscoveredWorkflow | None:
        for workflow in self._by_name.values():
            if workflow.definition is definition:
                return workflow
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
