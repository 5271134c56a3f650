"""The HTTP gateway: Flue's workflow protocol on FastAPI."""

from .. import _lazy
from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._errors import (
    InternalError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RouteNotFoundError,
    ServerShuttingDownError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "InternalError",
    "MethodNotAllowedError",
    "PayloadTooLargeError",
    "RouteNotFoundError",
    "ServerShuttingDownError",
    "UnsupportedMediaTypeError",
    "create_app",
]

_lazy.publish(__name__)
