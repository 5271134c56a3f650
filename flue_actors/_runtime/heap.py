"""The garbage collector's settings for a long-lived process (``flue-actors serve``, ``batch``,
a Ray host).

With hundreds of runs in flight, most objects the collector's young generation finds are still
in use (each run holds its harness, sessions, coroutines and events while it waits on its
model or its log): CPython's default threshold (a pass every 700 net allocations) walks them
again and again, promotes them, and so triggers full passes over everything alive, the
process's modules and definitions included. Timed with ``gc.callbacks`` over
``benchmarks/bench_runs.py``'s durable runs (load average 5 to 8): the collector took 0.4 to
0.5 ms of a run's 1.1 to 1.5 ms of CPU with the defaults, 0.18 to 0.21 ms with these settings.

- ``gc.freeze()`` after the workflows are loaded moves what exists then (modules, definitions,
  tool schemas) out of every later pass: they live as long as the process anyway.
- A young generation of 100,000 objects instead of 700: a run's objects die (by reference
  counting: the runs make no cycles for a pass to find) before a pass sees them, so almost
  nothing is walked again. At 5,000 (the first setting), ``flue-actors batch`` of 10,000
  ``summarize`` items made 208-225 passes taking 1.8-2.0 s of its 9.4-10.2 s of CPU (load
  average about 5); at 100,000, 4 passes and 0.03-0.07 s, and 6-8% less CPU. The bound on
  what a pass may then walk at once (a pause of tens of milliseconds) is the price.

Only for a process that is the command itself, or a Ray host's own worker process: a library
(or a test session calling the CLI's ``main``) keeps the interpreter's settings.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["YOUNG_GENERATION", "settle_heap", "settle_loaded"]

YOUNG_GENERATION: Final = 100_000


def settle_heap() -> None:
    """Collect once, freeze what survives, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)


def settle_loaded() -> None:
    """In a process whose heap is settled: freeze what it loaded since, for good (Ray, which
    a command imports only when its Ray backend connects: tens of thousands of objects that
    every later full pass would walk). Nothing in a process that never settled its heap."""
    if gc.get_freeze_count():
        gc.collect()
        gc.freeze()
