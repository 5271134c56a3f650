"""The server protects itself, seen from a client: idle and stalled connections are closed, and
over the connection limit a new request gets 503 at once instead of hanging."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import Served, serve_project, start_serve, stopped_at_exit

LIMIT = 8
READ_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = serve_project(tmp_path_factory.mktemp("protection"))
    options = (
        "--limit-connections",
        str(LIMIT),
        "--read-timeout",
        str(READ_TIMEOUT),
        "--keep-alive-seconds",
        str(KEEP_ALIVE),
    )
    with stopped_at_exit(start_serve(project, *options)) as server:
        yield server


def _connect(served: Served) -> socket.socket:
    port = int(served.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        raise AssertionError(f"still open after {timeout} s; got {received!r}") from None
    return received


def _status(sock: socket.socket) -> int:
    """Ask for /healthz and read the whole response (head and body); its status."""
    sock.sendall(HEALTHZ)
    sock.settimeout(5)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a full response head: {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the full response body"
        body += chunk
    return int(lines[0].split(" ", 2)[1])


def test_a_connection_that_sends_nothing_is_closed_after_the_read_timeout(served: Served) -> None:
    with _connect(served) as sock:
        started = time.monotonic()
        answer = _read_until_closed(sock, READ_TIMEOUT + 3)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= READ_TIMEOUT * 0.9


def test_a_stalled_request_head_gets_408(served: Served) -> None:
    with _connect(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")  # and nothing more
        answer = _read_until_closed(sock, READ_TIMEOUT + 3)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_idle_keep_alive_connection_is_closed(served: Served) -> None:
    with _connect(served) as sock:
        assert _status(sock) == 200
        started = time.monotonic()
        assert _read_until_closed(sock, KEEP_ALIVE + 3) == b""
    assert time.monotonic() - started >= KEEP_ALIVE * 0.5


def test_over_the_limit_new_requests_get_503_at_once_until_idle_ones_are_reaped(
    served: Served,
) -> None:
    idle = [_connect(served) for _ in range(LIMIT)]
    try:
        with _connect(served) as late:
            asked = time.monotonic()
            assert _status(late) == 503
            assert time.monotonic() - asked < 1.0
        # The idle connections are closed by the read timeout; then clients get through.
        for sock in idle:
            assert _read_until_closed(sock, READ_TIMEOUT + 3).startswith(b"HTTP/1.1 408 ")
        with _connect(served) as fresh:
            assert _status(fresh) == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_stalled_request_body_closes_the_connection(served: Served) -> None:
    with _connect(served) as sock:
        sock.sendall(
            b"POST /workflows/summarize HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"text": '  # and nothing more
        )
        started = time.monotonic()
        _read_until_closed(sock, READ_TIMEOUT + 3)
    assert time.monotonic() - started >= READ_TIMEOUT * 0.9
