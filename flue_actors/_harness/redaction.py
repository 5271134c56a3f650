"""Image bytes never enter events (reference 1.21): image blocks in emitted messages carry a
sentinel instead of their base64 data. The model, and the session's own history, keep the bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._messages import ImageContent

__all__ = ["IMAGE_DATA_OMITTED", "MAX_IMAGE_CHARS", "check_images", "redact", "redact_all"]

IMAGE_DATA_OMITTED = "[image data omitted from event]"
MAX_IMAGE_CHARS = 14 * 1024 * 1024  # Flue's limit: 14 MiB of base64 characters per image


def _redact_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    changed = False
    out = []
    for block in content:
        if (
            isinstance(block, dict)
            and block.get("type") == "image"
            and isinstance(block.get("data"), str)
            and block["data"] != IMAGE_DATA_OMITTED
        ):
            block = {**block, "data": IMAGE_DATA_OMITTED}
            changed = True
        out.append(block)
    return out if changed else content


def redact(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """``message`` with image data replaced; the same object when it has no images (copy on
    write, so the common case costs nothing)."""
    content = message.get("content")
    redacted = _redact_content(content)
    return message if redacted is content else {**message, "content": redacted}


def redact_all(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [redact(message) for message in messages]


def check_images(images: Sequence[dict[str, Any]]) -> list[ImageContent]:
    """Validate prompt images (``{"type": "image", "data": base64, "mimeType": ...}``)."""
    checked: list[ImageContent] = []
    for image in images:
        if (
            not isinstance(image, dict)
            or image.get("type", "image") != "image"
            or not isinstance(image.get("data"), str)
            or not isinstance(image.get("mimeType"), str)
        ):
            raise ValueError(
                'images must be {"type": "image", "data": <base64 str>, "mimeType": <str>}'
            )
        if len(image["data"]) > MAX_IMAGE_CHARS:
            raise ValueError(f"an image may hold at most {MAX_IMAGE_CHARS} base64 characters")
        checked.append({"type": "image", "data": image["data"], "mimeType": image["mimeType"]})
    return checked
