"""A fake Anthropic Messages API server, out of process, for end-to-end tests and benchmarks.

    python -m flue_actors.testing.messages_server [--host 127.0.0.1] [--port 0]
                                                  [--delay-ms N] [--log FILE]
                                                  [--batch-processing-ms N]

Serves ``POST /v1/messages`` (JSON, or a ``text/event-stream`` when the request asks to stream,
exactly as the ``anthropic`` SDK reads them) and ``GET /healthz``. Point a process at it with
``ANTHROPIC_BASE_URL=<url>`` and any ``ANTHROPIC_API_KEY``. Once it listens it prints one line
ending in its URL on stdout (``--port 0`` picks a free port).

Answers: queued ones first (``POST /_script``, see :class:`MessagesServer`); with nothing
queued, ``"SUMMARY: "`` plus the first 20 characters of the last user message, so every
answer follows from its request. A last user message containing ``[delay=NNN]`` is answered
after NNN ms (``--delay-ms`` for every request); a client that goes away meanwhile gets
nothing. ``--log FILE`` appends one JSON line per Messages API request: ``time``, ``method``,
``path``, ``headers``, ``body``.

The Message Batches API (``/v1/messages/batches``: create, retrieve, list, cancel, delete,
results as JSONL) is emulated by :mod:`flue_actors.testing._batches_wire`: each batched request
is answered as a plain one would be; a batch ends ``--batch-processing-ms`` after it was created
(default 0: at once). ``/_batches`` controls them: ``GET`` lists them, ``POST`` with
``{"complete": ID|null}``, ``{"expire": ID|null}``, ``{"advance": SECONDS}`` or
``{"processing_seconds": S|null}`` moves them on.

The responses are built by :mod:`flue_actors.testing._messages_wire`, as the in-process
``anthropic_api`` fixture builds them. The server is a bare ASGI app on uvicorn: nothing but
the standard library, uvicorn and that module is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import parse_qsl

from ._batches_wire import BytesAnswer, MessageBatches
from ._messages_wire import (
    STREAM_HEADERS,
    Answer,
    JsonAnswer,
    MessagesScript,
    error_answer,
    requested_delay_ms,
    summary_reply,
)

__all__ = ["MessagesApiApp", "MessagesServer", "MessagesServerError", "main"]

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

READY_PREFIX: Final = "flue-actors fake Messages API listening on "
SCRIPT_PATH: Final = "/_script"
BATCHES_CONTROL_PATH: Final = "/_batches"


class MessagesApiApp:
    """The ASGI application: the Messages API, ``/healthz`` and the script endpoint."""

    def __init__(
        self,
        *,
        delay_ms: int = 0,
        log: IO[str] | None = None,
        batch_processing_ms: int | None = 0,
    ) -> None:
        self.script = MessagesScript()
        self.delay_ms = delay_ms
        self._log = log
        self._batch_processing = None if batch_processing_ms is None else batch_processing_ms / 1000
        self.batches = MessageBatches(
            self._respond, base_url="http://127.0.0.1", processing_seconds=self._batch_processing
        )

    def _respond(self, body: Mapping[str, Any]) -> Answer:
        return self.script.answer(body) or self.script.build(summary_reply(body), body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/healthz":
            await _send_json(send, JsonAnswer(200, {"ok": True}))
            return
        raw = await _read_body(receive)
        if path == SCRIPT_PATH:
            await _send_json(send, self._script_request(method, raw))
            return
        if path == BATCHES_CONTROL_PATH:
            await _send_json(send, self._batches_request(method, raw))
            return
        problem: str | None = None
        try:
            body = json.loads(raw or b"{}")
        except ValueError as error:
            body, problem = raw.decode("utf-8", "replace"), f"invalid JSON body: {error}"
        self._record(scope, body)
        if problem is None and self.batches.handles(path):
            self.batches.base_url = _base_url(scope)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            batch_answer = self.batches.handle(method, path, query, body)
            if isinstance(batch_answer, BytesAnswer):
                await _send_bytes(send, batch_answer)
            else:
                await _send_json(send, batch_answer)
            return
        if method != "POST" or path != "/v1/messages":
            await _send_json(send, error_answer(404, "not_found_error", f"Not found: {path}"))
            return
        if problem is None and not isinstance(body, dict):
            problem = "the body is not a JSON object"
        if problem is not None:
            await _send_json(send, error_answer(400, "invalid_request_error", problem))
            return
        delay = requested_delay_ms(body)
        delay = self.delay_ms if delay is None else delay
        if delay > 0 and await _client_left_within(receive, delay / 1000):
            return
        await _send_answer(send, receive, self._respond(body))

    def _batches_request(self, method: str, raw: bytes) -> JsonAnswer:
        if method == "GET":
            return JsonAnswer(
                200,
                {
                    "batches": self.batches.views(),
                    "requests": len(self.batches.requests),
                    "custom_ids": [request["custom_id"] for request in self.batches.requests],
                },
            )
        if method != "POST":
            return error_answer(405, "invalid_request_error", "use GET or POST")
        try:
            command = json.loads(raw)
            if not isinstance(command, dict) or len(command) != 1:
                raise TypeError("one of complete, expire, advance, processing_seconds")
            ((name, value),) = command.items()
            if name == "complete":
                ended = self.batches.complete(value)
            elif name == "expire":
                ended = self.batches.expire(value)
            elif name == "advance":
                self.batches.advance(float(value))
                ended = 0
            elif name == "processing_seconds":
                self.batches.processing_seconds = None if value is None else float(value)
                ended = 0
            else:
                raise TypeError(f"unknown command {name!r}")
        except (ValueError, TypeError, KeyError) as error:
            return error_answer(400, "invalid_request_error", f"bad batches command: {error}")
        return JsonAnswer(200, {"ended": ended})

    def _script_request(self, method: str, raw: bytes) -> JsonAnswer:
        if method == "DELETE":
            self.batches.clear()
            self.batches.processing_seconds = self._batch_processing
            return JsonAnswer(200, {"dropped": self.script.clear()})
        if method == "GET":
            return JsonAnswer(200, {"queued": len(self.script)})
        if method != "POST":
            return error_answer(405, "invalid_request_error", "use GET, POST or DELETE")
        try:
            items = json.loads(raw)
            if not isinstance(items, list):
                raise TypeError("the script is a JSON list of answers")
            for item in items:
                self._queue(item)
        except (ValueError, TypeError, KeyError) as error:
            return error_answer(400, "invalid_request_error", f"bad script: {error}")
        return JsonAnswer(200, {"queued": len(self.script)})

    def _queue(self, item: Any) -> None:
        if not isinstance(item, dict) or len(item) != 1:
            raise TypeError(
                f'an answer is {{"reply": {{...}}}}, {{"fail": ...}} or {{"stall": {{}}}}: {item!r}'
            )
        ((kind, options),) = item.items()
        if not isinstance(options, dict):
            raise TypeError(f"the options of {kind!r} are a JSON object")
        if kind == "reply":
            self.script.reply(**options)
        elif kind == "fail":
            self.script.fail(**options)
        elif kind == "stall" and not options:
            self.script.stall()
        else:
            raise KeyError(kind)

    def _record(self, scope: Scope, body: Any) -> None:
        if self._log is None:
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        entry = {
            "time": time.time(),
            "method": scope["method"],
            "path": scope["path"],
            "headers": headers,
            "body": body,
        }
        self._log.write(json.dumps(entry) + "\n")
        self._log.flush()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; ``True`` as soon as the client disconnects (nothing more to send)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except TimeoutError:
        return False
    return True


def _header_list(headers: Mapping[str, str], length: int | None) -> list[tuple[bytes, bytes]]:
    pairs = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
    if length is not None:
        pairs.append((b"content-length", str(length).encode()))
    return pairs


async def _send_json(send: Send, answer: JsonAnswer) -> None:
    data = answer.encoded()
    headers = {"content-type": "application/json", **answer.headers}
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": _header_list(headers, len(data)),
        }
    )
    await send({"type": "http.response.body", "body": data})


def _base_url(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"host":
            return f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
    host, port = scope["server"]
    return f"http://{host}:{port}"


async def _send_bytes(send: Send, answer: BytesAnswer) -> None:
    headers = _header_list(answer.headers, len(answer.body))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _send_answer(send: Send, receive: Receive, answer: Answer) -> None:
    if isinstance(answer, JsonAnswer):
        await _send_json(send, answer)
        return
    data = b"".join(answer.events)
    if answer.stall is None:
        # The whole stream in one write: the SDK parses it the same, and it is cheapest.
        headers = _header_list(STREAM_HEADERS, len(data))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        return
    headers = _header_list(STREAM_HEADERS, None)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": True})
    await _client_left_within(receive, float("inf"))


# --- the command ---------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flue_actors.testing.messages_server",
        description="A fake Anthropic Messages API server (for tests and benchmarks).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=int, default=0, help="answer every request this late")
    parser.add_argument("--log", help="append one JSON line per Messages API request here")
    parser.add_argument(
        "--batch-processing-ms",
        type=int,
        default=0,
        help="a message batch ends this long after it was created (-1: only when told)",
    )
    args = parser.parse_args(argv)
    import uvicorn

    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    sock = _listen(args.host, args.port)
    # Listening already: a client connecting from here on is queued until uvicorn accepts.
    print(READY_PREFIX + _url(sock), flush=True)
    config = uvicorn.Config(
        MessagesApiApp(
            delay_ms=args.delay_ms,
            log=log,
            batch_processing_ms=None if args.batch_processing_ms < 0 else args.batch_processing_ms,
        ),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if log is not None:
            log.close()
    return 0


# --- the handle tests use ------------------------------------------------------------------------


class MessagesServerError(RuntimeError):
    """The fake Messages API server did not start, or refused a script."""


class MessagesServer:
    """A running fake Messages API server (a subprocess), and what it was asked.

    ``MessagesServer.start(log=path)`` starts one and returns once it listens; ``url`` is its
    base URL (for ``ANTHROPIC_BASE_URL``), ``requests()`` the requests it has logged so far,
    ``reply``/``fail``/``stall`` queue scripted answers ahead of the default one, and ``stop()``
    (or leaving the ``with`` block) ends it.
    """

    def __init__(
        self,
        process: subprocess.Popen[str],
        url: str,
        log: Path,
        *,
        first_request: int = 0,
        owner: bool = True,
    ) -> None:
        self.process = process
        self.url = url
        self.log = log
        self._first = first_request
        self._owner = owner

    def for_test(self) -> MessagesServer:
        """A view of this server for one test: the script emptied (ids count from 1 again),
        ``requests()`` only those made from now on; stopping it leaves the server running."""
        self.clear()
        first = len(self._read_log())
        return MessagesServer(self.process, self.url, self.log, first_request=first, owner=False)

    @classmethod
    def start(
        cls,
        *,
        log: Path,
        delay_ms: int = 0,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> MessagesServer:
        command = [
            sys.executable,
            "-m",
            "flue_actors.testing.messages_server",
            "--host",
            host,
            "--port",
            "0",
            "--delay-ms",
            str(delay_ms),
            "--log",
            str(log),
        ]
        stderr = log.with_name(log.name + ".stderr")
        with stderr.open("ab") as errors:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                env=dict(env) if env is not None else None,
            )
        stdout = process.stdout
        assert stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        line = lines[0].strip() if lines else ""
        if not line.startswith(READY_PREFIX):
            process.kill()
            process.wait(10)
            raise MessagesServerError(
                f"the fake Messages API server did not start within {timeout} s "
                f"(exit {process.returncode}); stdout: {line!r}; stderr:\n"
                + stderr.read_text(encoding="utf-8", errors="replace")
            )
        return cls(process, line.removeprefix(READY_PREFIX), log)

    def requests(self) -> list[dict[str, Any]]:
        """The logged requests, oldest first (``time``, ``method``, ``path``, ``headers``,
        ``body``): all of them, or those since ``for_test()`` made this view."""
        return self._read_log()[self._first :]

    def _read_log(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        text = self.log.read_text(encoding="utf-8")
        # The server writes whole lines; a line still being written has no newline yet.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def _script(self, method: str, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.request(method, self.url + SCRIPT_PATH, json=items, timeout=10)
        if response.status_code != 200:
            raise MessagesServerError(response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def reply(self, text: str = "", **options: Any) -> MessagesServer:
        """Queue one assistant message (the options of ``AnthropicApi.reply``)."""
        self._script("POST", [{"reply": {"text": text, **options}}])
        return self

    def fail(self, **options: Any) -> MessagesServer:
        """Queue one failure (the options of ``AnthropicApi.fail``)."""
        self._script("POST", [{"fail": options}])
        return self

    def stall(self) -> MessagesServer:
        """Queue a stream that starts and then never ends."""
        self._script("POST", [{"stall": {}}])
        return self

    def batches(self) -> list[dict[str, Any]]:
        """Every message batch the server holds, oldest first, as the API shows them."""
        views: list[dict[str, Any]] = self._control("GET")["batches"]
        return views

    def batched_requests(self) -> int:
        """How many requests the batches it accepted held (since the last ``clear``)."""
        count: int = self._control("GET")["requests"]
        return count

    def batched_custom_ids(self) -> list[str]:
        """The ``custom_id`` of every request its batches held, in submission order (since the
        last ``clear``): a request submitted twice appears twice."""
        custom_ids: list[str] = self._control("GET")["custom_ids"]
        return custom_ids

    def complete_batches(self, batch_id: str | None = None) -> int:
        """End processing of one batch (or all) now; how many ended."""
        ended: int = self._control("POST", {"complete": batch_id})["ended"]
        return ended

    def expire_batches(self, batch_id: str | None = None) -> int:
        """Expire one batch (or all) now: requests still processing end ``expired``."""
        ended: int = self._control("POST", {"expire": batch_id})["ended"]
        return ended

    def advance_batches(self, seconds: float) -> None:
        """Move the batches' clock on by ``seconds``."""
        self._control("POST", {"advance": seconds})

    def batch_processing(self, seconds: float | None) -> None:
        """How long new batches take to end (``None``: until completed or expired by hand)."""
        self._control("POST", {"processing_seconds": seconds})

    def _control(self, method: str, command: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        response = httpx.request(method, self.url + BATCHES_CONTROL_PATH, json=command, timeout=10)
        if response.status_code != 200:
            raise MessagesServerError(response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def clear(self) -> int:
        """Drop the queued answers and every batch; how many answers there were."""
        dropped: int = self._script("DELETE")["dropped"]
        return dropped

    def stop(self) -> None:
        if not self._owner:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> MessagesServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
