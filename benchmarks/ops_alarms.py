"""One worker tick over 10,000 alarms on the built-in metrics store: how long
``alarms.evaluate_due`` takes for all of them in one transaction, against the 2 s target,
on SQLite and PostgreSQL, side by side with the floor of reading the same rollups.

The data: ``--series`` series (2,000: 100 services x 20 routes of ``api_latency_ms``),
each a lognormal latency (a median of 40-160 ms, sigma 0.4-1.0), ``--per-minute``
samples a minute (30) for 11 minutes, ingested through ``metrics.parse_json`` +
``metrics.ingest`` (per-minute rollups with a DDSketch each). In the last minute one
series in ``--spike-every`` (100) gets three times slower, so the second tick has
alarms to move.

The alarms: ``--alarms`` (10,000) metric alarms made with ``alarms.create_alarm``, five
on each series; one in five matches a whole service (20 series merged per period) instead
of one route. Statistics avg, max and p99 in turn, and half of them 3 out of 5 datapoints
(range 7 periods), half 1 out of 1 (range 3 periods), all over 60-second periods. Each
threshold is the series' own expected value of that statistic times a factor: 1.5-3 for
six alarms in seven (quiet until their series slows down), 0.3-0.6 for the seventh (in
ALARM all along), as alarms are set to catch a change rather than to flap.

What is timed, as the worker job runs it (``mechanisms.ops.EvaluateAlarms``): one
transaction, ``alarms.evaluate_due(Ctx(session, system_principal("bench"), now))``,
commit. Two ticks a minute apart:

- tick 1, the first evaluation: every alarm leaves INSUFFICIENT_DATA, so every alarm
  writes its transition (an alarm transition row, an audit record, an outbox event);
- tick 2, a minute later: the steady state, where only alarms whose data changed move.

Each round starts from the same database (the alarms' state is reset, the transitions,
audit records and events of the previous round removed; not timed); best of
``--repeat``. The floor: one SELECT of every rollup the tick reads (the metric's rollups
in the longest window), fetched as rows, no decoding.

    .venv/bin/python benchmarks/ops_alarms.py                  # a table, ~2 min
    .venv/bin/python benchmarks/ops_alarms.py --json           # JSON on stdout
    .venv/bin/python benchmarks/ops_alarms.py --backends sqlite --repeat 2 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ops_ingest import DEFAULT_PG, database, machine, server_version, version_of  # noqa: E402

TARGET_SECONDS = 2.0
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
METRIC = "api_latency_ms"
ROUTES_PER_SERVICE = 20
MINUTES = 11  # 10 complete minutes before the first tick, and the one the second tick adds
STATISTICS = ("avg", "max", "p99")
# (evaluation_periods, datapoints_to_alarm)
SHAPES = ((5, 3), (1, 1))


@dataclass
class Series:
    service: str
    route: str
    mu: float
    sigma: float


def make_series(count: int, seed: int) -> list[Series]:
    rng = random.Random(seed)
    return [
        Series(
            f"svc-{i // ROUTES_PER_SERVICE:03d}",
            f"/r{i % ROUTES_PER_SERVICE:02d}",
            math.log(rng.uniform(40, 160)),
            rng.uniform(0.4, 1.0),
        )
        for i in range(count)
    ]


def expected(series: Series, statistic: str, per_minute: int) -> float:
    """Roughly the value a period of this series shows for a statistic."""
    if statistic == "avg":
        return math.exp(series.mu + series.sigma**2 / 2)
    z = {"p99": 2.326, "max": 2.326 + 0.4 * math.log(per_minute / 100 + 1) + 0.3}[statistic]
    return math.exp(series.mu + z * series.sigma)


def seed_metrics(
    db: Any, series: list[Series], per_minute: int, spike_every: int, seed: int
) -> int:
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import metrics

    rng = random.Random(seed)
    start = NOW - timedelta(minutes=MINUTES - 1)
    samples = []
    for minute in range(MINUTES):
        base = start.timestamp() + minute * 60
        for i, s in enumerate(series):
            slower = math.log(3) if minute == MINUTES - 1 and i % spike_every == 0 else 0.0
            labels = {"service": s.service, "route": s.route}
            for j in range(per_minute):
                samples.append(
                    {
                        "name": METRIC,
                        "labels": labels,
                        "value": round(rng.lognormvariate(s.mu + slower, s.sigma), 3),
                        "timestamp": base + (j + rng.random()) * 60 / per_minute,
                    }
                )
    limits = metrics.IngestLimits()
    for first in range(0, len(samples), limits.max_samples):
        chunk = {"samples": samples[first : first + limits.max_samples]}
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("bench"), NOW + timedelta(minutes=1, seconds=5))
            metrics.ingest(ctx, metrics.parse_json(chunk, ctx.now, limits), limits)
    return len(samples)


def seed_alarms(db: Any, series: list[Series], count: int, per_minute: int, seed: int) -> None:
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    rng = random.Random(seed)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("bench"), NOW - timedelta(hours=1))
        for i in range(count):
            s = series[i % len(series)]
            statistic = STATISTICS[i % len(STATISTICS)]
            periods, to_alarm = SHAPES[(i // len(STATISTICS)) % len(SHAPES)]
            whole_service = i % 5 == 4
            factor = rng.uniform(0.3, 0.6) if i % 7 == 6 else rng.uniform(1.5, 3.0)
            match = (
                {"service": s.service}
                if whole_service
                else {"service": s.service, "route": s.route}
            )
            alarms.create_alarm(
                ctx,
                f"alarm-{i:05d}",
                "shop",
                metric=METRIC,
                match=match,
                definition={
                    "statistic": statistic,
                    "comparison": "GreaterThanThreshold",
                    "threshold": round(expected(s, statistic, per_minute) * factor, 1),
                    "period_seconds": 60,
                    "evaluation_periods": periods,
                    "datapoints_to_alarm": to_alarm,
                    "treat_missing_data": "missing",
                },
                severity=3,
            )


def reset_alarms(db: Any) -> None:
    """Every alarm back to its state before the first tick; what ticks wrote removed; the
    evaluator's caches emptied (tick 1 is a worker's first tick, as after a restart)."""
    from mechanisms.core.tables import AuditHead, AuditRecord, Event
    from mechanisms.ops import alarms
    from mechanisms.ops.tables import Alarm, AlarmTransition

    alarms._PERCENTILES.clear()
    alarms._DEFINITIONS.clear()

    with db.transaction() as session:
        session.execute(
            update(Alarm).values(
                state="INSUFFICIENT_DATA",
                state_reason="Unchecked: initial alarm creation",
                state_changed_at=NOW - timedelta(hours=1),
                evaluated_at=None,
                next_evaluation_at=NOW - timedelta(hours=1),
            )
        )
        session.execute(delete(AlarmTransition))
        # Events and audit records the ticks wrote (the seed's own stay; the chain head
        # goes back to the last of them, so the chain stays whole).
        session.execute(delete(Event).where(Event.occurred_at >= NOW))
        last = session.execute(
            select(AuditRecord.seq, AuditRecord.hash)
            .where(AuditRecord.at < NOW)
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).one()
        session.execute(delete(AuditRecord).where(AuditRecord.seq > last.seq))
        session.execute(update(AuditHead).values(last_seq=last.seq, last_hash=last.hash))


def tick(db: Any, now: datetime) -> tuple[float, int, dict[str, float]]:
    """One worker tick, timed; returns (seconds, alarms changed, time inside transitions)."""
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    spent = {"transitions": 0.0}
    original = alarms._record_transitions

    def timed_transitions(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            original(*args, **kwargs)
        finally:
            spent["transitions"] += time.perf_counter() - started

    gc.collect()
    alarms._record_transitions = timed_transitions
    try:
        start, cpu = time.perf_counter(), time.process_time()
        with db.transaction() as session:
            changed = alarms.evaluate_due(Ctx(session, system_principal("bench"), now))
        elapsed = time.perf_counter() - start
        # CPU seconds of this process (all of the work on SQLite; PostgreSQL's server not
        # included): on a shared machine it moves far less than the wall clock.
        spent["cpu"] = time.process_time() - cpu
    finally:
        alarms._record_transitions = original
    return elapsed, changed, spent


def floor(db: Any) -> float:
    """One SELECT of every rollup the tick reads, fetched, nothing decoded."""
    from mechanisms.ops.tables import MetricRollup, MetricSeries

    gc.collect()
    start = time.perf_counter()
    with db.transaction(write=False) as session:
        ids = select(MetricSeries.id).where(MetricSeries.name == METRIC)
        rows = session.execute(
            select(
                MetricRollup.series_id,
                MetricRollup.bucket_start,
                MetricRollup.count,
                MetricRollup.sum,
                MetricRollup.min,
                MetricRollup.max,
                MetricRollup.sketch,
            ).where(
                MetricRollup.series_id.in_(ids),
                MetricRollup.bucket_start >= NOW - timedelta(minutes=7),
                MetricRollup.bucket_start < NOW,
            )
        ).all()
    elapsed = time.perf_counter() - start
    if not rows:
        raise AssertionError("the floor read no rollups")
    return elapsed


@dataclass
class Result:
    backend: str
    server: str = ""
    seed_seconds: float = 0.0
    rollups: int = 0
    alarms: int = 0
    tick1: list[float] = field(default_factory=list)
    tick2: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    changed: tuple[int, int] | None = None
    states_after: dict[str, int] = field(default_factory=dict)
    # per round: seconds spent inside the transitions (row, audit record, event) of each tick
    transitions_seconds: list[tuple[float, float]] = field(default_factory=list)
    # per round: CPU seconds of the benchmark process in each tick
    cpu_seconds: list[tuple[float, float]] = field(default_factory=list)
    error: str | None = None


def run_backend(backend: str, args: argparse.Namespace, progress: Any) -> Result:
    from mechanisms.ops.tables import Alarm, MetricRollup

    result = Result(backend)
    series = make_series(args.series, seed=3)
    try:
        context = database(backend, args.pg_url)
        db = context.__enter__()
    except Exception as exc:  # no server: say so instead of failing
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    try:
        result.server = server_version(db)
        started = time.perf_counter()
        samples = seed_metrics(db, series, args.per_minute, args.spike_every, seed=5)
        seed_alarms(db, series, args.alarms, args.per_minute, seed=7)
        result.seed_seconds = time.perf_counter() - started
        with db.transaction(write=False) as session:
            result.rollups = session.execute(
                select(func.count()).select_from(MetricRollup)
            ).scalar_one()
            result.alarms = session.execute(select(func.count()).select_from(Alarm)).scalar_one()
        print(
            f"  {backend}: seeded {samples:,} samples into {result.rollups:,} rollups and "
            f"{result.alarms:,} alarms in {result.seed_seconds:.0f} s",
            file=progress,
            flush=True,
        )
        answers = set()
        for round_no in range(args.repeat):
            reset_alarms(db)
            first, changed1, spent1 = tick(db, NOW)
            second, changed2, spent2 = tick(db, NOW + timedelta(minutes=1))
            result.tick1.append(first)
            result.tick2.append(second)
            result.floor.append(floor(db))
            with db.transaction(write=False) as session:
                states = dict(
                    session.execute(select(Alarm.state, func.count()).group_by(Alarm.state)).all()
                )
                due = session.execute(
                    select(func.count()).where(
                        Alarm.next_evaluation_at <= NOW + timedelta(minutes=1)
                    )
                ).scalar_one()
            if changed1 != args.alarms or due:
                raise AssertionError(
                    f"tick 1 moved {changed1} of {args.alarms} alarms; {due} left unevaluated"
                )
            answers.add((changed1, changed2, tuple(sorted(states.items()))))
            result.changed = (changed1, changed2)
            result.states_after = states
            result.transitions_seconds.append((spent1["transitions"], spent2["transitions"]))
            result.cpu_seconds.append((spent1["cpu"], spent2["cpu"]))
            print(
                f"  {backend} round {round_no + 1}/{args.repeat}: tick 1 {first:.2f} s "
                f"({changed1:,} changed, {spent1['transitions']:.2f} s in transitions), "
                f"tick 2 {second:.2f} s ({changed2:,} changed), floor {result.floor[-1]:.3f} s; "
                f"CPU {spent1['cpu']:.2f} s and {spent2['cpu']:.2f} s",
                file=progress,
                flush=True,
            )
        if len(answers) != 1:
            raise AssertionError(f"the rounds disagree: {answers}")
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        context.__exit__(None, None, None)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alarms", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=2_000)
    parser.add_argument("--per-minute", type=int, default=30, help="samples a series a minute")
    parser.add_argument(
        "--spike-every", type=int, default=100, help="one series in N slows down in the last minute"
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds (best kept)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("MECH_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write JSON (to stdout without PATH)"
    )
    args = parser.parse_args(argv)
    if args.series % ROUTES_PER_SERVICE:
        parser.error(f"--series must be a multiple of {ROUTES_PER_SERVICE}")
    progress = sys.stderr if args.json == "-" else sys.stdout
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = [run_backend(b, args, progress) for b in args.backends.split(",")]
    report = {
        "benchmark": "ops_alarms",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {p: version_of(p) for p in ("mechanisms", "ddsketch", "SQLAlchemy", "psycopg")},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "alarms": args.alarms,
        "series": args.series,
        "per_minute": args.per_minute,
        "spike_every": args.spike_every,
        "repeat": args.repeat,
        "results": [r.__dict__ for r in results],
        "target_seconds": TARGET_SECONDS,
        "target_met": {
            f"{r.backend} tick {n}": bool(getattr(r, f"tick{n}"))
            and min(getattr(r, f"tick{n}")) < TARGET_SECONDS
            for r in results
            for n in (1, 2)
        },
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        payload = json.dumps(report, indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    if args.json != "-":
        print()
        print_table(report, results)
    return 0


def print_table(report: dict[str, Any], results: list[Result]) -> None:
    m = report["machine"]
    print(
        f"ops_alarms: {report['alarms']:,} alarms over {report['series']:,} series "
        f"({report['per_minute']} samples a minute each), one worker tick each, best of "
        f"{report['repeat']} rounds; {m['implementation']} {m['python']} on {m['cpu']} "
        f"({m['cores']} cores)"
    )
    print()
    print(
        f"{'backend':11} {'tick':26} {'seconds':>8} {'changed':>8} {'in transitions':>15} "
        f"{'vs 2 s':>7} {'vs floor':>9} {'CPU s':>6}"
    )
    for r in results:
        if r.error or not r.tick1:
            print(f"{r.backend:11} not measured: {r.error}")
            continue
        best_floor = min(r.floor)
        for n, label in ((1, "1: first evaluation"), (2, "2: a minute later")):
            best = min(getattr(r, f"tick{n}"))
            changed = r.changed[n - 1] if r.changed else 0
            ticks = getattr(r, f"tick{n}")
            spent = r.transitions_seconds[ticks.index(best)][n - 1]  # of the best round
            cpu = min(c[n - 1] for c in r.cpu_seconds)
            print(
                f"{r.backend:11} {label:26} {best:>8.2f} {changed:>8,} {spent:>14.2f}s "
                f"{best / TARGET_SECONDS:>6.2f}x {best / best_floor:>8.1f}x {cpu:>6.2f}"
            )
        print(f"{r.backend:11} {'floor: read the rollups':26} {best_floor:>8.3f}")
        print(f"{'':11} states after tick 2: {r.states_after}; {r.rollups:,} rollups; {r.server}")
    print()
    for key, met in report["target_met"].items():
        print(f"target < {TARGET_SECONDS:g} s, {key}: {'met' if met else 'NOT met'}")
    before, after = report["load_average_before"][0], report["load_average_after"][0]
    print(
        f"({report['seconds']:.0f} s; 1-minute load average {before:.2f} before, {after:.2f} after)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
