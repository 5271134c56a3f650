"""CPU time of a process tree, as the kernel accounts it: what a server spent on a load."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds"]


def cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and every live descendant (plus children it has reaped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry)] = (int(fields[1]), fields)  # fields[0] is the state; [1] the ppid
    tree, total = {root}, 0
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    for pid in tree:
        if pid in stats:
            fields = stats[pid][1]
            # utime, stime, cutime, cstime (fields 14-17 of stat; 11-14 after the state)
            total += sum(int(value) for value in fields[11:15])
    return total / ticks
