"""A throwaway PostgreSQL server that a test owns: its own data folder, address and process.

It runs the machine's installed binaries as the ``postgres`` user, listens on one address only
(and a Unix socket inside its folder, never the system's), trusts the clients of one subnet, and
runs without fsync: its data is thrown away with it. The machine's own server is not touched.
"""

from __future__ import annotations

import contextlib
import glob
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .netns import process_alive

__all__ = [
    "PostgresUnavailableError",
    "ThrowawayPostgres",
    "find_binaries",
    "remove_stale_servers",
]

_PREFIX = "flue-pg-"


class PostgresUnavailableError(Exception):
    """No PostgreSQL binaries or no ``postgres`` user on this machine."""


def find_binaries() -> Path:
    """The ``bin`` folder of the newest PostgreSQL installed under /usr/lib/postgresql."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: (
            int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0
        ),
    )
    if not found:
        raise PostgresUnavailableError("no PostgreSQL server under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


@dataclass
class ThrowawayPostgres:
    address: str
    clients: ipaddress.IPv4Network
    port: int = 5432
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.address}:{self.port}/postgres"

    def start(self, *, timeout: float = 30.0) -> None:
        binaries = find_binaries()
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailableError("there is no `postgres` user to run it as") from None
        # The server refuses to run as root; its folder must be the postgres user's.
        self.directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        os.chown(self.directory, user.pw_uid, user.pw_gid)
        data = self.directory / "data"
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N"],
            user="postgres",
            capture_output=True,
            timeout=60,
            check=True,
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all postgres {self.clients} trust\n")
        self._launch(timeout)

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop the server as an operator would (fast shutdown: its clients are disconnected),
        then start it again on the same data, address and port."""
        process = self.process
        assert process is not None, "start() first"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=timeout)
        self._launch(timeout)

    def _launch(self, timeout: float) -> None:
        assert self.directory is not None
        data = self.directory / "data"
        settings = {
            "listen_addresses": self.address,
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        options = [part for name, value in settings.items() for part in ("-c", f"{name}={value}")]
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(find_binaries() / "postgres"), "-D", str(data), *options],
                user="postgres",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.address, self.port), timeout=1),
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not listen within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        if self.directory is None:
            return ""
        path = self.directory / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown (clients disconnected), then SIGKILL of its process group if it lingers;
        the data folder is removed. Never raises."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # The server's children share its session; none may outlive it.
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def remove_stale_servers() -> list[str]:
    """Stop the servers (and remove the folders) of test processes that are gone: killed before
    their finalizers ran. Returns the folders removed."""
    removed = []
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"{_PREFIX}*-*")):
        owner = Path(folder).name.removeprefix(_PREFIX).split("-")[0]
        if not owner.isdigit() or process_alive(int(owner)):
            continue
        pid_file = Path(folder) / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            server = int(pid_file.read_text().splitlines()[0])
            # Only that server: the pid must still be a postgres running on this folder.
            command = Path(f"/proc/{server}/cmdline").read_bytes().decode(errors="replace")
            if folder in command:
                os.killpg(server, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
