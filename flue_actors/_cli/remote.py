"""``flue-actors run NAME --server URL``: run a workflow on a running server (flue_actors' or
Flue's) through the client, showing its events as the server streams them (SSE)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from .._jsonvalue import dumps
from .presenter import EventPresenter

if TYPE_CHECKING:
    from ..client import FlueApiError

__all__ = ["parse_header", "request_headers", "run_remote"]

EXIT_FAILED: Final = 1
EXIT_SIGNAL: Final = {signal.SIGINT: 130, signal.SIGTERM: 143}

# RFC 9110 field names (tokens); values: visible characters, spaces and tabs, no line breaks.
_FIELD_NAME: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FIELD_VALUE: Final = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` as ``(name, value)``; argparse reports a malformed one (exit 2)."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _FIELD_NAME.match(name) or not _FIELD_VALUE.match(value):
        raise argparse.ArgumentTypeError(f"not a header of the form 'Name: value': {text!r}")
    return name, value


def request_headers(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Repeated headers, the last value of a name winning whatever its case (as ``flue run``)."""
    chosen: dict[str, tuple[str, str]] = {}
    for name, value in pairs:
        chosen[name.lower()] = (name, value)
    return dict(chosen.values())


def _report_api_error(error: FlueApiError, err: TextIO) -> None:
    err.write(f"error: {error.message}\n  type: {error.type}\n  status: {error.status}\n")
    if error.details:
        err.write("".join(f"  {line}\n" for line in error.details.splitlines()))


async def run_remote(
    name: str,
    input: Any,
    *,
    server: str,
    headers: Mapping[str, str],
    out: TextIO,
    err: TextIO,
) -> int:
    """Invoke ``name`` on ``server`` and follow it to its end. Exit codes as a local run: 0 it
    completed (its result on ``out``), 1 it failed or was refused, 130/143 a signal, which
    cancels the run on the server (``POST /runs/{id}/cancel``) and waits for its end."""
    # The client (httpx) is loaded only here: the other commands never need it.
    import httpx

    from ..client import AsyncFlueClient, FlueApiError, FlueExecutionError

    err.write(f"workflow {name}\nserver {server}\n")
    presenter = EventPresenter(err, color=err.isatty())
    run_ids: list[str] = []
    received: list[signal.Signals] = []

    def show(event: dict[str, Any]) -> None:
        if not run_ids and isinstance(event.get("runId"), str):
            run_ids.append(event["runId"])
        presenter.show(event)

    async with AsyncFlueClient(server, headers=headers) as client:
        loop = asyncio.get_running_loop()
        running = asyncio.ensure_future(
            client.workflows.run(name, input, on_event=show, live="sse")
        )
        cancelling: set[asyncio.Task[None]] = set()

        def interrupt(signum: signal.Signals) -> None:
            if received:
                os._exit(EXIT_SIGNAL[signum])  # a second signal: stop waiting for the run
            received.append(signum)
            if not run_ids:  # not admitted yet, as far as we know: stop asking
                err.write(f"\n{signum.name}: stopping\n")
                running.cancel()
                return
            err.write(f"\n{signum.name}: cancelling run {run_ids[0]} on the server\n")
            cancelling.add(loop.create_task(cancel(run_ids[0])))

        async def cancel(run_id: str) -> None:
            try:
                await client.runs.cancel(run_id)
            except FlueApiError as error:  # it ended meanwhile, or the server refuses
                err.write(f"could not cancel run {run_id}: {error}\n")
            except httpx.TransportError as error:
                err.write(f"could not cancel run {run_id}: {error}\n")

        for signum in EXIT_SIGNAL:
            loop.add_signal_handler(signum, interrupt, signum)
        try:
            run = await running
        except asyncio.CancelledError:
            return EXIT_SIGNAL[received[0]]
        except FlueExecutionError as error:
            if error.failure == "terminal_event_missing":
                err.write(f"Workflow failed: {error}\n")
            return EXIT_SIGNAL[received[0]] if received else EXIT_FAILED
        except FlueApiError as error:
            _report_api_error(error, err)
            return EXIT_FAILED
        except httpx.TransportError as error:
            err.write(f"error: could not reach the server at {server}: {error}\n")
            return EXIT_FAILED
        finally:
            for signum in EXIT_SIGNAL:
                loop.remove_signal_handler(signum)
            await asyncio.gather(*cancelling)
        if received:
            return EXIT_SIGNAL[received[0]]
        if run.result is not None:
            out.write(dumps(run.result) + "\n")
        return 0
