"""``flue-actors hosts``: the RunHosts on a Ray cluster, and retiring them.

``hosts list`` shows every host with its deployment, node, process, active runs and state;
``hosts stop`` drains the hosts chosen (they finish their runs, take no new ones, then exit) or,
with ``--now``, kills them. Exit codes as everywhere in the CLI: 0 done, 1 refused (no cluster,
no such host), 2 a malformed command line.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .._runtime.ray.fleet import HostView

__all__ = ["add_hosts_parser", "host_table", "run_hosts"]

EXIT_FAILED = 1


def add_hosts_parser(commands: Any) -> None:
    hosts = commands.add_parser("hosts", help="list or retire the RunHosts on a Ray cluster")
    verbs = hosts.add_subparsers(dest="verb", required=True)
    address = {
        "help": "the Ray cluster (default: $FLUE_RAY_ADDRESS, else auto: the one `ray start` "
        "made on this machine)"
    }
    listing = verbs.add_parser("list", help="every host: deployment, node, pid, runs, state")
    listing.add_argument("--address", **address)
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    stop = verbs.add_parser(
        "stop", help="drain hosts (finish their runs, take none, exit), or kill them with --now"
    )
    stop.add_argument("--address", **address)
    chosen = stop.add_mutually_exclusive_group(required=True)
    chosen.add_argument("names", nargs="*", default=[], metavar="NAME", help="hosts by name")
    chosen.add_argument("--deployment", metavar="ID", help="every host of this deployment")
    chosen.add_argument("--all", action="store_true", help="every host on the cluster")
    stop.add_argument(
        "--now", action="store_true", help="kill at once (their runs end as interrupted)"
    )


def host_table(hosts: Sequence[HostView]) -> str:
    """``hosts list``: one line per host, unknowns as ``-``."""
    lines = [f"{'NAME':<48}  {'DEPLOYMENT':<21}  {'NODE':<12}  {'PID':>7}  RUNS  STATE"]
    for host in hosts:
        runs = "-" if host.active is None else str(host.active)
        lines.append(
            f"{host.name:<48}  {host.deployment or '-':<21}  {(host.node_id or '-')[:12]:<12}  "
            f"{host.pid or '-':>7}  {runs:>4}  {host.state}"
        )
    return "\n".join(lines) + "\n"


def run_hosts(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Ray is imported only by the commands that need it.
    from .._runtime.ray import connect
    from .._runtime.ray.fleet import list_hosts, stop_hosts

    ray = connect(args.address or os.environ.get("FLUE_RAY_ADDRESS") or "auto")
    hosts = list_hosts(ray)
    if args.verb == "list":
        if args.json:
            out.write(json.dumps([host.to_json() for host in hosts]) + "\n")
            return 0
        out.write(host_table(hosts))
        return 0
    known = {host.name for host in hosts}
    if args.all:
        names = sorted(known)
    elif args.deployment:
        names = [host.name for host in hosts if host.deployment == args.deployment]
        if not names:
            err.write(f"error: no host of deployment {args.deployment} (see `hosts list`)\n")
            return EXIT_FAILED
    else:
        unknown = [name for name in args.names if name not in known]
        if unknown:
            err.write(f"error: no such host: {', '.join(unknown)} (nothing was stopped)\n")
            return EXIT_FAILED
        names = list(dict.fromkeys(args.names))
    outcome = stop_hosts(ray, names, now=args.now)
    for name, what in outcome.items():
        out.write(f"{name}  {what}\n")
    if not names:
        err.write("no hosts to stop\n")
    return 0
