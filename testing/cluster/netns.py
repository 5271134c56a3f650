"""Machines on one host: network namespaces joined by a bridge, for cluster tests.

Each :class:`Machine` is a network namespace with one veth link to a bridge in the root
namespace, on a private IPv4 /24 that exists only on that bridge. A process started in a machine
sees exactly two interfaces, its loopback and its own address, so a Ray node that listens on
every address listens on those two and nowhere else; IPv6 is off inside the machines and on the
bridge (a link-local address would be a third way in). The machines have no default route: any
attempt to reach beyond the subnet fails at once. The root namespace (the test process, a
PostgreSQL server on the bridge's address) reaches every machine, and the machines reach each
other, through the bridge.

Names carry the pid of the process that made them (``flue-<pid>-<role>``, ``flb<pid>``), so a
later run can remove what a killed test process could not (:func:`remove_stale`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Machine", "Network", "NetworkUnavailableError", "remove_stale"]

_NAMESPACE: Final = re.compile(r"^flue-(\d+)-[a-z]+$")
_BRIDGE: Final = re.compile(r"^flb(\d+)$")
_LINK: Final = re.compile(r"^flv(\d+)\d$")
# Private /24s are drawn from here; one that overlaps any address or route already on the
# machine is never used.
_POOL: Final = ipaddress.IPv4Network("10.128.0.0/9")


class NetworkUnavailableError(Exception):
    """The machine cannot make namespaces (not root, no ``ip``, a restricted container...)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Machine:
    """A network namespace standing for one machine of a cluster."""

    namespace: str
    address: str
    # The root namespace's end of the machine's veth pair.
    link: str = ""

    def command(self, *args: str) -> list[str]:
        """``args`` run inside this machine (``ip netns exec`` execs, so the pid is the
        command's own)."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def pids(self) -> list[int]:
        result = _ip("netns", "pids", self.namespace, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def kill_all(self, *, timeout: float = 10.0) -> None:
        """SIGKILL every process in the machine, until none is left (a dying process can
        still fork: look again)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} in {self.namespace} would not die")
            time.sleep(0.05)

    def sockets(self, *flags: str) -> list[tuple[str, str]]:
        """``(local, peer)`` address:port pairs of ``ss -Hn <flags>`` inside the machine."""
        result = subprocess.run(
            self.command("ss", "-Hn", *flags),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        pairs = []
        for line in result.stdout.splitlines():
            columns = line.split()
            # State Recv-Q Send-Q Local Peer [Process]
            pairs.append((columns[3], columns[4]))
        return pairs

    def interface_addresses(self) -> set[str]:
        result = subprocess.run(
            self.command("ip", "-o", "addr", "show"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return {line.split()[3].split("/")[0] for line in result.stdout.splitlines()}


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        target = line.split()[0]
        if target == "default":
            continue
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(target, strict=False))
    return [network for network in used if isinstance(network, ipaddress.IPv4Network)]


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    used = _used_networks()
    candidates = list(_POOL.subnets(new_prefix=24))
    chooser = random.Random(seed)
    for _ in range(100):
        subnet = chooser.choice(candidates)
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise NetworkUnavailableError(f"no free /24 in {_POOL} on this machine")


def _disable_ipv6(*command_prefix: str) -> None:
    for key in ("all", "default"):
        subprocess.run(
            [*command_prefix, "sysctl", "-q", "-w", f"net.ipv6.conf.{key}.disable_ipv6=1"],
            capture_output=True,
            timeout=30,
            check=False,  # a kernel without IPv6 has nothing to disable
        )


@dataclass
class Network:
    """A bridge in the root namespace (``gateway`` is its address) and machines on it."""

    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: str
    machines: dict[str, Machine] = field(default_factory=dict)

    @classmethod
    def create(cls, roles: Sequence[str]) -> Network:
        """Make the bridge and one machine per role. Raises :class:`NetworkUnavailableError`
        if this process cannot create namespaces; on any other failure removes what it made."""
        if os.geteuid() != 0:
            raise NetworkUnavailableError("network namespaces need root")
        if shutil.which("ip") is None or shutil.which("ss") is None:
            raise NetworkUnavailableError("the `ip` and `ss` commands (iproute2) are missing")
        pid = os.getpid()
        probe = f"flue-{pid}-probe"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            raise NetworkUnavailableError(f"`ip netns add` failed: {made.stderr.strip()}")
        _ip("netns", "delete", probe, check=False)

        subnet = _free_subnet(pid)
        hosts = subnet.hosts()
        network = cls(bridge=f"flb{pid}", subnet=subnet, gateway=str(next(hosts)))
        try:
            _ip("link", "add", network.bridge, "type", "bridge")
            # Only the bridge's own IPv6 settings: the machine's other interfaces are left as
            # they are.
            subprocess.run(
                ["sysctl", "-q", "-w", f"net.ipv6.conf.{network.bridge}.disable_ipv6=1"],
                capture_output=True,
                timeout=30,
                check=False,
            )
            _ip("addr", "add", f"{network.gateway}/{subnet.prefixlen}", "dev", network.bridge)
            _ip("link", "set", network.bridge, "up")
            for index, role in enumerate(roles):
                namespace, link = f"flue-{pid}-{role}", f"flv{pid}{index}"
                machine = Machine(namespace=namespace, address=str(next(hosts)), link=link)
                network.machines[role] = machine
                network._attach(machine)
        except BaseException:
            network.destroy()
            raise
        return network

    def _attach(self, machine: Machine) -> None:
        namespace, link = machine.namespace, machine.link
        _ip("netns", "add", namespace)
        inside = ("ip", "netns", "exec", namespace)
        _disable_ipv6(*inside)
        # The peer is made inside the namespace, where it is simply eth0.
        _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", link, "master", self.bridge, "up")
        address = f"{machine.address}/{self.subnet.prefixlen}"
        _ip("-n", namespace, "addr", "add", address, "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")

    def __getitem__(self, role: str) -> Machine:
        return self.machines[role]

    def destroy(self) -> list[str]:
        """Kill every process in every machine, delete the machines and the bridge. Never
        raises: returns what could not be done (for the caller to report)."""
        problems = []
        for machine in self.machines.values():
            try:
                machine.kill_all()
            except Exception as error:
                problems.append(str(error))
            # The link goes explicitly: a namespace outlives its deletion while orphaned TCP
            # sockets in it (to a killed peer) retransmit, and would keep its veth pair.
            deleted = _ip("link", "delete", machine.link, check=False)
            if deleted.returncode != 0 and "Cannot find" not in deleted.stderr:
                problems.append(f"ip link delete {machine.link}: {deleted.stderr.strip()}")
            deleted = _ip("netns", "delete", machine.namespace, check=False)
            if deleted.returncode != 0 and "No such file" not in deleted.stderr:
                problems.append(f"ip netns delete {machine.namespace}: {deleted.stderr.strip()}")
        deleted = _ip("link", "delete", self.bridge, check=False)
        if deleted.returncode != 0 and "Cannot find" not in deleted.stderr:
            problems.append(f"ip link delete {self.bridge}: {deleted.stderr.strip()}")
        return problems


def remove_stale() -> list[str]:
    """Remove namespaces and bridges that a test process, now gone, left behind (it was killed
    before its finalizers ran). Returns their names."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return []
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAMESPACE.match(name)
        if match and not process_alive(int(match.group(1))):
            with contextlib.suppress(RuntimeError):
                Machine(namespace=name, address="").kill_all()
            _ip("netns", "delete", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = _BRIDGE.match(name) or _LINK.match(name)
        if match and not process_alive(int(match.group(1))):
            _ip("link", "delete", name, check=False)
            removed.append(name)
    return removed
