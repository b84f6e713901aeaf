"""How long `import mechanisms.sdk` takes in a fresh interpreter (target: under 150 ms),
next to what it cannot do without: the HTTP client (httpx) and the validation library the
rule set is parsed with (pydantic).

Each import runs in its own fresh interpreter with ``-X importtime``; the figure is the
cumulative time Python reports for the top-level module (the interpreter's own start-up is
not in it). Best and median of ``--repeat`` runs: the best is the import's cost, the median
shows how much other load on the machine moved it. Beside it, the CPU time the interpreter
spent (user + system) minus a bare interpreter's: on a shared machine other work stretches
the wall-clock figure far more than the CPU one. A figure, not a ratio, and not a test:
tests/flags/test_sdk_imports.py checks *what* the import loads, never how long it takes.

    .venv/bin/python benchmarks/sdk_import.py                 # a table
    .venv/bin/python benchmarks/sdk_import.py --repeat 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

TARGET_MS = 150.0
SUBJECT = "mechanisms.sdk"
REFERENCES = ("httpx", "pydantic")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def run_python(code: str) -> tuple[str, float]:
    """A fresh interpreter runs `code`: its -X importtime report and the CPU ms it used."""
    before = children_cpu_ms()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr, children_cpu_ms() - before


def import_ms(report: str, module: str) -> float:
    """Milliseconds the -X importtime report gives for importing `module` and what it imports."""
    for line in reversed(report.splitlines()):
        _, _, cumulative, name = (part.strip() for part in line.replace("|", ":", 2).split(":"))
        if name == module:
            return int(cumulative) / 1000
    raise RuntimeError(f"{module} is not in the -X importtime report")


def measure(module: str, repeat: int, bare_cpu_ms: float) -> dict[str, float]:
    runs = [run_python(f"import {module}") for _ in range(repeat)]
    wall = [import_ms(report, module) for report, _ in runs]
    cpu = [cpu_ms - bare_cpu_ms for _, cpu_ms in runs]
    return {
        "best_ms": min(wall),
        "median_ms": statistics.median(wall),
        "cpu_best_ms": min(cpu),
        "cpu_median_ms": statistics.median(cpu),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="fresh interpreters per module")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args()

    bare_cpu_ms = min(run_python("pass")[1] for _ in range(args.repeat))
    results = {
        module: measure(module, args.repeat, bare_cpu_ms) for module in (SUBJECT, *REFERENCES)
    }
    report = {
        "python": platform.python_version(),
        "machine": platform.platform(),
        "load_average": os.getloadavg(),
        "repeat": args.repeat,
        "bare_interpreter_cpu_ms": bare_cpu_ms,
        "target_ms": TARGET_MS,
        "imports": results,
        "under_target": results[SUBJECT]["best_ms"] < TARGET_MS,
    }
    if args.json == "-":
        print(json.dumps(report, indent=2))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"Python {report['python']}, load average {report['load_average'][0]:.2f}")
    print(f"{'import':<16}{'best ms':>10}{'median ms':>12}{'CPU best':>10}{'CPU median':>12}")
    for module, f in results.items():
        print(
            f"{module:<16}{f['best_ms']:>10.1f}{f['median_ms']:>12.1f}"
            f"{f['cpu_best_ms']:>10.1f}{f['cpu_median_ms']:>12.1f}"
        )
    print(f"(CPU: beyond a bare interpreter's {bare_cpu_ms:.1f} ms)")
    verdict = "under" if report["under_target"] else "OVER"
    print(f"{SUBJECT}: best {results[SUBJECT]['best_ms']:.1f} ms, {verdict} {TARGET_MS:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
