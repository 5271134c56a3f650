"""The guard against a silent slowdown: quick forms of the benchmarks, held to the README.

``benchmarks/baseline.json`` holds every figure the README's tables quote (the README is
checked to quote each one, so the two cannot disagree). This script runs each benchmark's
quick form (``bench_runs.py``'s full one: a few seconds, and medians of three rounds of 1,000
runs are what its CPU per run is stated for) and fails when a figure falls below a quarter of
its baseline (or, for a figure where lower is better, rises above four times it): generous for
a shared, noisy machine, certain to catch a 4x drop. A figure may set its own ``factor`` (CPU
per run of ``runs``: 3, so that a 4x rise fails even measured on a day as fast as the stated
one, while a day twice as slow, with the same code, passes) or ``"judged": false`` (reported,
never failing: runs/s where CPU per run is judged). Prints one JSON object; exits 1 on any
failure.

    python benchmarks/check.py [--only runs,gateway] [--readme-only]

A change to a hot path re-measures the full benchmarks and updates baseline.json and the
README in the same commit. ``vs_flue`` needs Flue's peer folder (``$FLUE_PEER_DIR`` or
``shared/peers/flue`` beside the checkout); without it that benchmark is reported as skipped,
unless ``FLUE_PEER_DIR`` is set, in which case it must run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).resolve().parent / "baseline.json"
FACTOR = 4.0


def quoted(value: float) -> str:
    """How the README writes a figure: thousands separators, the baseline's decimals."""
    return f"{value:,}"


def readme_section(text: str, heading: str) -> str:
    """The README's text under the title ``heading``, subsections included, up to the next
    title of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, flags=re.M)
    if match is None:
        return ""
    level = len(match.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[match.end() :], flags=re.M)
    return text[match.end() : match.end() + end.start()] if end else text[match.end() :]


def check_readme(baseline: dict[str, Any]) -> list[str]:
    """Every baseline figure must appear, as written, in its README section."""
    text = (ROOT / "README.md").read_text()
    missing = []
    for bench, spec in baseline["benchmarks"].items():
        section = readme_section(text, spec["section"])
        if spec["command"] not in section:
            missing.append(f"{bench}: the command `{spec['command']}` is not quoted")
        for name, figure in spec["figures"].items():
            if quoted(figure["value"]) not in section:
                missing.append(f"{bench}.{name}: {quoted(figure['value'])} is not quoted")
    return missing


def lookup(report: dict[str, Any], path: str) -> float:
    value: Any = report
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return float(value)


def _peer_available() -> bool:
    candidates = [os.environ.get("FLUE_PEER_DIR")]
    candidates += [str(parent / "shared" / "peers" / "flue") for parent in ROOT.parents]
    return any(c and (Path(c) / "serve.sh").is_file() for c in candidates)


def run_quick(bench: str, spec: dict[str, Any]) -> dict[str, Any]:
    if bench == "vs_flue" and not os.environ.get("FLUE_PEER_DIR") and not _peer_available():
        return {"skipped": "Flue's peer folder was not found (set FLUE_PEER_DIR)"}
    argv = [sys.executable, str(ROOT / "benchmarks" / spec["script"]), *spec["quick"]]
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900)
    seconds = round(time.monotonic() - began, 1)
    if done.returncode != 0:
        return {"seconds": seconds, "error": done.stderr[-2000:] or done.stdout[-2000:]}
    report = json.loads(done.stdout.strip().splitlines()[-1])
    figures: dict[str, Any] = {}
    failures = []
    for name, figure in spec["figures"].items():
        measured = lookup(report, figure["path"])
        ok, bound = judge(figure, measured)
        figures[name] = {"measured": round(measured, 3), "stated": figure["value"], "bound": bound}
        if not ok:
            failures.append(name)
    return {"seconds": seconds, "figures": figures, "failed": failures}


def judge(figure: dict[str, Any], measured: float) -> tuple[bool, str]:
    """Whether ``measured`` is within the figure's bound, and the bound as text. A figure's
    own ``factor`` replaces :data:`FACTOR`; ``"judged": false`` only reports it (runs/s of a
    benchmark that also states its CPU per run: the machine's load alone moves runs/s by
    more than 4x, CPU per run far less)."""
    stated = figure["value"]
    factor = figure.get("factor", FACTOR)
    if figure["better"] == "higher":
        ok, bound = measured >= stated / factor, f">= {stated / factor:.4g}"
    else:
        ok, bound = measured <= stated * factor, f"<= {stated * factor:.4g}"
    if not figure.get("judged", True):
        return True, f"reported only ({bound})"
    return ok, bound


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--readme-only", action="store_true", help="only check the README")
    args = parser.parse_args()
    baseline = json.loads(BASELINE.read_text())
    missing = check_readme(baseline)
    result: dict[str, Any] = {"benchmark": "check", "factor": FACTOR, "readme_missing": missing}
    ok = not missing
    if not args.readme_only:
        wanted = set(args.only.split(",")) if args.only else set(baseline["benchmarks"])
        for bench, spec in baseline["benchmarks"].items():
            if bench not in wanted:
                continue
            outcome = run_quick(bench, spec)
            result[bench] = outcome
            if "error" in outcome or outcome.get("failed"):
                ok = False
    result["ok"] = ok
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
