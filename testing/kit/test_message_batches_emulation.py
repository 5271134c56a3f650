"""The kit's Message Batches API, as the official SDK calls it, in both emulations: the respx
``anthropic_api`` fixture (in process) and the out-of-process ``messages_server``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import anthropic
import pytest

from flue_actors.testing import AnthropicApi
from flue_actors.testing.messages_server import MessagesServer

MODEL = "claude-haiku-4-5"


def _params(text: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


class Emulation(Protocol):
    """What a test drives, whichever emulation serves it."""

    client: anthropic.AsyncAnthropic

    def reply(self, text: str) -> Any: ...
    def fail(self, **options: Any) -> Any: ...
    def stall(self) -> Any: ...
    def processing(self, seconds: float | None) -> None: ...
    def advance(self, seconds: float) -> None: ...
    def complete(self) -> int: ...
    def expire(self) -> int: ...
    def batched_requests(self) -> int: ...


class InProcess:
    def __init__(self, api: AnthropicApi) -> None:
        self.api = api
        self.client = anthropic.AsyncAnthropic(
            api_key=api.api_key, base_url=api.base_url, max_retries=0
        )

    def reply(self, text: str) -> Any:
        return self.api.reply(text)

    def fail(self, **options: Any) -> Any:
        return self.api.fail(**options)

    def stall(self) -> Any:
        return self.api.stall()

    def processing(self, seconds: float | None) -> None:
        self.api.batches.processing_seconds = seconds

    def advance(self, seconds: float) -> None:
        self.api.batches.advance(seconds)

    def complete(self) -> int:
        return self.api.batches.complete()

    def expire(self) -> int:
        return self.api.batches.expire()

    def batched_requests(self) -> int:
        return len(self.api.batches.requests)


class OutOfProcess:
    def __init__(self, server: MessagesServer) -> None:
        self.server = server
        self.client = anthropic.AsyncAnthropic(
            api_key="sk-ant-fake", base_url=server.url, max_retries=0
        )

    def reply(self, text: str) -> Any:
        return self.server.reply(text)

    def fail(self, **options: Any) -> Any:
        return self.server.fail(**options)

    def stall(self) -> Any:
        return self.server.stall()

    def processing(self, seconds: float | None) -> None:
        self.server.batch_processing(seconds)

    def advance(self, seconds: float) -> None:
        self.server.advance_batches(seconds)

    def complete(self) -> int:
        return self.server.complete_batches()

    def expire(self) -> int:
        return self.server.expire_batches()

    def batched_requests(self) -> int:
        return self.server.batched_requests()


@pytest.fixture(params=["anthropic_api", "messages_server"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Emulation]:
    emulation: Emulation
    if request.param == "anthropic_api":
        emulation = InProcess(request.getfixturevalue("anthropic_api"))
    else:
        emulation = OutOfProcess(request.getfixturevalue("messages_server"))
    async with emulation.client:
        yield emulation


async def _results(client: anthropic.AsyncAnthropic, batch_id: str) -> dict[str, Any]:
    return {
        line.custom_id: line.result.to_dict(mode="json")
        async for line in await client.messages.batches.results(batch_id)
    }


async def test_a_batch_processes_for_its_delay_then_serves_its_results(api: Emulation) -> None:
    # The server's clock is real time (plus what advance adds): margins far above test time.
    api.processing(3600.0)
    api.reply("first")
    api.reply("second")
    batch = await api.client.messages.batches.create(
        requests=[
            {"custom_id": "a-1", "params": _params("one")},  # type: ignore[typeddict-item]
            {"custom_id": "b-2", "params": _params("two")},  # type: ignore[typeddict-item]
        ]
    )
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 2
    assert batch.results_url is None
    assert batch.expires_at > batch.created_at
    with pytest.raises(anthropic.AnthropicError, match="finished processing"):
        await api.client.messages.batches.results(batch.id)
    api.advance(1800.0)
    assert (await api.client.messages.batches.retrieve(batch.id)).processing_status == (
        "in_progress"
    )
    api.advance(1800.0)
    ended = await api.client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at is not None
    assert ended.request_counts.succeeded == 2
    assert ended.request_counts.processing == 0
    assert ended.results_url is not None
    assert ended.results_url.endswith(f"{batch.id}/results")
    results = await _results(api.client, batch.id)
    # Each request took the next scripted answer, in submission order.
    assert results["a-1"]["type"] == "succeeded"
    assert results["a-1"]["message"]["content"] == [{"type": "text", "text": "first"}]
    assert results["b-2"]["message"]["content"] == [{"type": "text", "text": "second"}]
    assert results["a-1"]["message"]["usage"]["input_tokens"] == 10
    assert api.batched_requests() == 2


async def test_unscripted_requests_get_the_default_answer_on_the_server(
    messages_server: MessagesServer,
) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-ant-fake", base_url=messages_server.url, max_retries=0
    ) as client:
        await _default_answer(client, messages_server)


async def _default_answer(
    client: anthropic.AsyncAnthropic, messages_server: MessagesServer
) -> None:
    batch = await client.messages.batches.create(
        requests=[{"custom_id": "x", "params": _params("hello there")}]  # type: ignore[typeddict-item]
    )
    assert batch.processing_status == "ended"  # no processing delay by default
    results = await _results(client, batch.id)
    assert results["x"]["message"]["content"][0]["text"] == "SUMMARY: hello there"
    assert [view["id"] for view in messages_server.batches()] == [batch.id]


async def test_per_request_errors_expiry_and_complete_now(api: Emulation) -> None:
    api.processing(None)  # only when told
    api.fail(status=400, message="messages: bad")
    api.fail(status=529)
    api.stall()
    api.reply("fine")
    batch = await api.client.messages.batches.create(
        requests=[
            {"custom_id": f"r{n}", "params": _params(str(n))}  # type: ignore[typeddict-item]
            for n in range(4)
        ]
    )
    api.advance(3600.0)
    assert (await api.client.messages.batches.retrieve(batch.id)).processing_status == (
        "in_progress"
    )
    assert api.complete() == 1
    ended = await api.client.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.expired) == (1, 2, 1)
    results = await _results(api.client, batch.id)
    assert results["r0"] == {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "messages: bad"},
        },
    }
    assert results["r1"]["error"]["error"]["type"] == "overloaded_error"
    assert results["r2"] == {"type": "expired"}
    assert results["r3"]["type"] == "succeeded"


async def test_a_batch_expires_after_24_hours(api: Emulation) -> None:
    api.processing(None)
    api.reply("never seen")
    batch = await api.client.messages.batches.create(
        requests=[{"custom_id": "late", "params": _params("x")}]  # type: ignore[typeddict-item]
    )
    api.advance(80_000.0)
    assert (await api.client.messages.batches.retrieve(batch.id)).processing_status == (
        "in_progress"
    )
    api.advance(6_400.0)
    ended = await api.client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.expired == 1
    assert await _results(api.client, batch.id) == {"late": {"type": "expired"}}
    api.reply("not seen either")
    second = await api.client.messages.batches.create(
        requests=[{"custom_id": "gone", "params": _params("y")}]  # type: ignore[typeddict-item]
    )
    assert api.expire() == 1  # the first has ended already
    assert (await api.client.messages.batches.retrieve(second.id)).request_counts.expired == 1


async def test_cancel_lists_and_delete(api: Emulation) -> None:
    api.processing(None)
    ids = []
    for number in range(3):
        api.reply(f"answer {number}")
        batch = await api.client.messages.batches.create(
            requests=[{"custom_id": "only", "params": _params(str(number))}]  # type: ignore[typeddict-item]
        )
        ids.append(batch.id)
    canceling = await api.client.messages.batches.cancel(ids[0])
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    canceled = await api.client.messages.batches.retrieve(ids[0])
    assert canceled.processing_status == "ended"
    assert canceled.request_counts.canceled == 1
    assert await _results(api.client, ids[0]) == {"only": {"type": "canceled"}}
    # Newest first, one page at a time; the SDK follows after_id.
    first_page = await api.client.messages.batches.list(limit=2)
    assert [batch.id for batch in first_page.data] == [ids[2], ids[1]]
    assert first_page.has_more is True
    listed = [batch.id async for batch in api.client.messages.batches.list(limit=2)]
    assert listed == list(reversed(ids))
    with pytest.raises(anthropic.BadRequestError):
        await api.client.messages.batches.delete(ids[1])  # still processing
    deleted = await api.client.messages.batches.delete(ids[0])
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await api.client.messages.batches.retrieve(ids[0])


async def test_malformed_batches_are_refused(api: Emulation) -> None:
    duplicate = [
        {"custom_id": "same", "params": _params("a")},
        {"custom_id": "same", "params": _params("b")},
    ]
    with pytest.raises(anthropic.BadRequestError, match="used twice"):
        await api.client.messages.batches.create(requests=duplicate)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        await api.client.messages.batches.create(
            requests=[{"custom_id": "no spaces!", "params": _params("a")}]  # type: ignore[typeddict-item]
        )
    with pytest.raises(anthropic.BadRequestError, match="at least one"):
        await api.client.messages.batches.create(requests=[])
    with pytest.raises(anthropic.NotFoundError):
        await api.client.messages.batches.retrieve("msgbatch_nope")
    assert api.batched_requests() == 0
