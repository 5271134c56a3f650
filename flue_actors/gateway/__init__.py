"""The HTTP gateway: Flue's workflow protocol on FastAPI."""

from .app import DEFAULT_MAX_BODY_BYTES, create_app
from .errors import (
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
