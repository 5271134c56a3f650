"""``fake/echo``: a model that answers with the last user message, for dry runs without a key."""

from __future__ import annotations

from ..errors import ModelNotResolvedError
from ._base import ModelRequest, ModelResponse, StreamListener, TextDelta, Usage

__all__ = ["FakeProvider"]


class FakeProvider:
    """The built-in ``fake`` provider. Its one model is ``echo``."""

    name = "fake"
    api = "fake"

    async def complete(self, request: ModelRequest, on_stream: StreamListener) -> ModelResponse:
        if request.model != "echo":
            raise ModelNotResolvedError(
                model=f"fake/{request.model}", reason="the fake provider has only 'echo'"
            )
        text = ""
        for message in reversed(request.messages):
            if message.get("role") == "user":
                text = "".join(
                    block.get("text", "") for block in message["content"] if block["type"] == "text"
                )
                break
        on_stream(TextDelta(text))
        words_in = sum(len(m.get("content", ())) for m in request.messages)
        return ModelResponse(
            content=[{"type": "text", "text": text}],
            usage=Usage(input=words_in, output=len(text.split())),
            response_model="echo",
        )
