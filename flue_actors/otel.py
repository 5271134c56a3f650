"""OpenTelemetry spans for runs, operations, model turns, tools and tasks (the ``otel`` extra:
``pip install 'flue-actors[otel]'``), named after the GenAI semantic conventions as Flue's
``@flue/opentelemetry`` names them.

A run's span is parented from the W3C ``traceparent`` (and ``tracestate``) it was admitted with
(``POST /workflows/{name}`` headers, or ``runtime.invoke(..., trace_carrier=...)``), which is
stored with the run and travels with it to whatever process hosts it; without one it is a root.
Every span inside the run is a child of the span around it. Content (prompts, messages, tool
arguments and results) is never exported. Importing ``flue_actors`` does not import this module
or OpenTelemetry.
"""

from . import _lazy
from ._otel import INSTRUMENTATION_KEY, install_opentelemetry, opentelemetry_instrumentation

__all__ = ["INSTRUMENTATION_KEY", "install_opentelemetry", "opentelemetry_instrumentation"]

_lazy.publish(__name__)
