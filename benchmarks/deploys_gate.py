"""The calendar gate for a large org, in-process: how long one ``gate_state`` call takes,
answered from the calendar model (the rules compiled once, every answer computed afresh).

The org: ``--services`` services (1,000) in teams of 20, each with the stages beta, gamma
and prod, and ``--windows`` block windows (5,000) spread over every level of the scope tree:

- org: a weekend rule (every Friday 15:00 to Monday 09:00, Europe/Berlin), a nightly batch
  window (01:00-03:00 America/New_York), German and US public holidays (Bavaria one day
  before and after), an end-of-year freeze, and one-off windows up to 10 in all;
- team: 10 each, half recurring (weekly or monthly RRULEs in one of six zones, some with
  COUNT or UNTIL), half one-off ranges and ad-hoc freezes;
- service: 3 each (a recurring maintenance window, a one-off, a freeze);
- stage: the rest, on prod (a recurring rule or a one-off).

Each query asks for a random (service, stage) at a random instant in 2026-2027 (so the
gate walks each rule's occurrences at many points, and answers OPEN and BLOCKED with their
next transition). Timed per call with ``perf_counter_ns``, the GC on (as in a server);
the first pass (``--cold`` calls on a fresh calendar, each rule's occurrences expanded on
first use) and the steady state (``--calls`` calls) are reported apart.

Side by side, the same question answered without what makes it fast: a calendar built for
each call (every window validated and compiled, the RRULE cache cleared) and scanned
whole; ``--naive`` calls (each takes seconds).

    .venv/bin/python benchmarks/deploys_gate.py              # a table, ~1 min
    .venv/bin/python benchmarks/deploys_gate.py --json       # JSON on stdout
    .venv/bin/python benchmarks/deploys_gate.py --calls 50000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from mechanisms.deploys import calendar as cal  # noqa: E402
from mechanisms.deploys.calendar import (  # noqa: E402
    BlockWindow,
    Calendar,
    Freeze,
    Holidays,
    OneOff,
    Recurring,
    Scope,
)

TARGET_MS = 5.0
ORG = "acme"
STAGES = ("beta", "gamma", "prod")
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "UTC",
)
RULES = (
    "FREQ=WEEKLY;BYDAY=FR",
    "FREQ=WEEKLY;BYDAY=TU,TH",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYMONTHDAY=1,15",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE;COUNT=40",
    "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270630T000000Z",
)
SPAN_START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_DAYS = 730


def one_off(rng: random.Random, *, freeze: bool = False) -> OneOff:
    start = datetime(2026, 1, 1) + timedelta(hours=rng.randrange(SPAN_DAYS * 24))
    end = start + timedelta(hours=rng.randint(2, 96))
    kind = Freeze if freeze else OneOff
    return kind(start, end, rng.choice(ZONES))


def recurring(rng: random.Random) -> Recurring:
    start = datetime(
        2025, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.choice((0, 30))
    )
    return Recurring(
        rng.choice(RULES), start, timedelta(minutes=30 * rng.randint(1, 16)), rng.choice(ZONES)
    )


def build_org(services: int, windows: int, seed: int) -> tuple[list[BlockWindow], list[Scope]]:
    rng = random.Random(seed)
    teams = [f"team-{i:03d}" for i in range((services + 19) // 20)]
    scopes = [
        Scope(ORG, teams[i // 20], f"svc-{i:04d}", stage)
        for i in range(services)
        for stage in STAGES
    ]
    found: list[BlockWindow] = [
        BlockWindow(
            "org-weekend",
            Scope(ORG),
            Recurring(
                "FREQ=WEEKLY;BYDAY=FR",
                datetime(2024, 1, 5, 15),
                timedelta(days=2, hours=18),
                "Europe/Berlin",
            ),
            "weekend",
        ),
        BlockWindow(
            "org-nightly",
            Scope(ORG),
            Recurring(
                "FREQ=DAILY", datetime(2024, 1, 1, 1), timedelta(hours=2), "America/New_York"
            ),
            "nightly batch",
        ),
        BlockWindow(
            "org-holidays-de",
            Scope(ORG),
            Holidays("DE", "BY", "Europe/Berlin", 1, 1),
            "German holidays",
        ),
        BlockWindow(
            "org-holidays-us", Scope(ORG), Holidays("US", None, "America/New_York"), "US holidays"
        ),
        BlockWindow(
            "org-year-end",
            Scope(ORG),
            OneOff(datetime(2026, 12, 21), datetime(2027, 1, 4, 9), "Europe/Berlin"),
            "year-end freeze",
        ),
    ]
    found += [BlockWindow(f"org-{i}", Scope(ORG), one_off(rng), "org event") for i in range(5)]
    for team in teams:
        for i in range(10):
            rule = recurring(rng) if i % 2 else one_off(rng, freeze=i % 4 == 0)
            found.append(BlockWindow(f"{team}-{i}", Scope(ORG, team), rule, "team window"))
    for n in range(services):
        team, service = teams[n // 20], f"svc-{n:04d}"
        for i, rule in enumerate((recurring(rng), one_off(rng), one_off(rng, freeze=True))):
            found.append(
                BlockWindow(f"{service}-{i}", Scope(ORG, team, service), rule, "service window")
            )
    n = 0
    while len(found) < windows:
        index = n % services
        team, service = teams[index // 20], f"svc-{index:04d}"
        rule = recurring(rng) if n % 2 else one_off(rng)
        found.append(
            BlockWindow(
                f"{service}-prod-{n}", Scope(ORG, team, service, "prod"), rule, "prod window"
            )
        )
        n += 1
    return found[:windows], scopes


def queries(scopes: list[Scope], count: int, seed: int) -> list[tuple[Scope, datetime]]:
    rng = random.Random(seed)
    return [
        (rng.choice(scopes), SPAN_START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400)))
        for _ in range(count)
    ]


def timed(
    calendar: Calendar, asks: list[tuple[Scope, datetime]]
) -> tuple[list[float], list[float], Counter]:
    """Wall-clock and CPU (this thread's) milliseconds per call: on a shared machine the
    wall-clock tail is mostly other processes' turns, which CPU time leaves out."""
    times, cpu, states = [], [], Counter()
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for scope, at in asks:
        started, cpu_started = clock(), cpu_clock()
        result = calendar.gate_state(scope, at)
        cpu.append((cpu_clock() - cpu_started) / 1e6)
        times.append((clock() - started) / 1e6)
        states[result.status.value] += 1
    return times, cpu, states


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "calls": len(times),
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[int(0.90 * (len(ordered) - 1))],
        "p99_ms": ordered[int(0.99 * (len(ordered) - 1))],
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def naive(windows: list[BlockWindow], asks: list[tuple[Scope, datetime]]) -> list[float]:
    """A calendar compiled for each call and scanned whole: no cache, no index."""
    times = []
    for scope, at in asks:
        started = time.perf_counter_ns()
        cal.compile_rule.cache_clear()
        covering = [w for w in windows if w.scope.covers(scope)]
        Calendar(covering).gate_state(scope, at)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--cold", type=int, default=3000)
    parser.add_argument("--naive", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--json", nargs="?", const="-", help="write JSON to this path ('-' or nothing: stdout)"
    )
    args = parser.parse_args()
    quiet = args.json == "-"

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    windows, scopes = build_org(args.services, args.windows, args.seed)
    kinds = Counter(w.kind.value for w in windows)
    levels = Counter(len(w.scope.key) for w in windows)
    say(
        f"org: {args.services} services, {len(scopes)} (service, stage) scopes, {len(windows)} windows {dict(kinds)}"
    )
    cal.compile_rule.cache_clear()
    started = time.perf_counter()
    calendar = Calendar(windows)
    build_s = time.perf_counter() - started
    say(f"calendar built (every rule validated and compiled) in {build_s:.2f} s")
    chain = statistics.mean(len(calendar.on_chain(s)) for s in scopes)
    cold_times, cold_cpu, _ = timed(calendar, queries(scopes, args.cold, args.seed + 1))
    say(f"cold pass: {args.cold} calls")
    warm_times, warm_cpu, states = timed(calendar, queries(scopes, args.calls, args.seed + 2))
    say(f"steady state: {args.calls} calls")
    naive_times = naive(windows, queries(scopes, args.naive, args.seed + 3)) if args.naive else []
    if naive_times:
        say(f"naive: {args.naive} calls")
    result = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
        "versions": {p: version(p) for p in ("python-dateutil", "holidays", "tzdata")},
        "org": {
            "services": args.services,
            "scopes": len(scopes),
            "windows": len(windows),
            "kinds": dict(kinds),
            "by_level": {
                ("org", "team", "service", "stage")[k - 1]: v for k, v in sorted(levels.items())
            },
            "windows_on_a_scope_chain_mean": chain,
        },
        "build_seconds": build_s,
        "cold": summary(cold_times),
        "cold_cpu": summary(cold_cpu),
        "steady": summary(warm_times),
        "steady_cpu": summary(warm_cpu),
        "answers": dict(states),
        "naive": summary(naive_times) if naive_times else None,
        "target_median_ms": TARGET_MS,
    }
    steady = result["steady"]
    if not quiet:
        print("\n| pass | calls | median ms | p90 ms | p99 ms | max ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        rows = [
            ("cold (first use of each rule)", result["cold"]),
            ("cold, CPU time", result["cold_cpu"]),
            ("**steady state**", steady),
            ("steady state, CPU time", result["steady_cpu"]),
        ]
        if naive_times:
            rows.append(("naive: compile and scan per call", result["naive"]))
        for name, s in rows:
            print(
                f"| {name} | {s['calls']:,} | {s['median_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} | {s['max_ms']:.3f} |"
            )
        print(f"\nanswers: {dict(states)}; windows on a scope's chain: {chain:.1f} on average")
        met = "met" if steady["median_ms"] < TARGET_MS else "NOT met"
        print(
            f"median {steady['median_ms']:.3f} ms vs target < {TARGET_MS} ms: {met} ({TARGET_MS / steady['median_ms']:.0f}x under)"
        )
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
