"""What importing flue_actors costs a process, and what its pytest plugin adds to every pytest run.

Every process that uses flue_actors imports it (a workflow file, the CLI, a Ray worker), and pytest
loads the plugin (the ``pytest11`` entry point ``flue_actors.testing.plugin``) in every pytest run
of an environment where the package is installed, whether or not the tests use the kit. Each
round starts fresh interpreters and measures, inside them:

- ``import``: ``import flue_actors`` in a bare interpreter;
- ``plugin``: loading the plugin module after ``import pytest`` (pytest's own import is not the
  plugin's cost);

as wall time and as the process's CPU time (steadier on a shared, loaded machine). The medians
over ``--rounds`` are printed as one JSON object, with the heavy dependencies each left loaded
(none, when imports are where they are used).

    python benchmarks/bench_import.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

HEAVY = (
    "aiohttp",
    "anthropic",
    "asyncpg",
    "fastapi",
    "httpx",
    "httpx2",
    "hypothesis",
    "just_bash",
    "ray",
    "respx",
    "starlette",
    "uvicorn",
)

# Run in a fresh interpreter: PREPARE is not measured, SUBJECT is.
_PROBE = """
import json, sys, time
{prepare}
before = {{m.split(".")[0] for m in sys.modules}}
wall, cpu = time.perf_counter(), time.process_time()
{subject}
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
loaded = {{m.split(".")[0] for m in sys.modules}} - before
print(json.dumps({{"wall_s": wall, "cpu_s": cpu, "heavy": sorted(loaded & set({heavy!r}))}}))
"""

SUBJECTS = {
    "import": ("", "import flue_actors"),
    "plugin": ("import pytest", "import flue_actors.testing.plugin"),
}


def probe(prepare: str, subject: str) -> dict[str, Any]:
    code = _PROBE.format(prepare=prepare, subject=subject, heavy=HEAVY)
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SUBJECTS}
    for _ in range(args.rounds):  # interleaved, so a burst of load hits both alike
        for name, (prepare, subject) in SUBJECTS.items():
            samples[name].append(probe(prepare, subject))
    report: dict[str, Any] = {"rounds": args.rounds}
    for name, runs in samples.items():
        report[f"{name}_wall_ms"] = round(statistics.median(r["wall_s"] for r in runs) * 1000, 1)
        report[f"{name}_cpu_ms"] = round(statistics.median(r["cpu_s"] for r in runs) * 1000, 1)
        report[f"{name}_heavy_modules"] = runs[-1]["heavy"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
