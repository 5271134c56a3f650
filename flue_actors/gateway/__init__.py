"""The HTTP gateway: Flue's workflow protocol on FastAPI."""

from .app import DEFAULT_MAX_BODY_BYTES, create_app

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]
