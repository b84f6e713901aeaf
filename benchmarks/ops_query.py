"""The alarm page's graph query: a 24-hour p99 over the merged rollups of 5 series, as
``metrics.query`` answers it, on SQLite and PostgreSQL, side by side with the old way of
answering it (every rollup's sketch decoded and merged into its period's one by one) and
with the floor of reading the same rollup rows.

The data: 5 series of ``api_latency_ms`` (one service, five routes), a lognormal latency
each (a median of 40-160 ms, sigma 0.4-1.0), ``--per-minute`` samples a minute (20) for
24 hours, ingested through ``metrics.parse_json`` + ``metrics.ingest`` (one per-minute
rollup with a DDSketch each: 7,200 rollups). The query: p99 of the service over
[now - 24 h, now) with the period the alarm page picks for a 60-second alarm over a day
(``alarm_view.display_period``), best of ``--repeat``. Both ways must give the same
value for every period (checked before timing).

    .venv/bin/python benchmarks/ops_query.py                   # a table, ~1 min
    .venv/bin/python benchmarks/ops_query.py --backends sqlite --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ops_ingest import DEFAULT_PG, NOW, database, machine, server_version  # noqa: E402

METRIC = "api_latency_ms"
ROUTES = ["/", "/items", "/cart", "/checkout", "/search"]


def seed(db: Any, per_minute: int) -> None:
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import metrics

    rng = random.Random(7)
    limits = metrics.IngestLimits(late_window=timedelta(days=2))
    start = NOW - timedelta(hours=24)
    for route in ROUTES:
        mu, sigma = rng.uniform(3.7, 5.1), rng.uniform(0.4, 1.0)
        samples = [
            {
                "name": METRIC,
                "labels": {"service": "checkout", "route": route},
                "value": round(rng.lognormvariate(mu, sigma), 3),
                "timestamp": (
                    start + timedelta(minutes=m, seconds=k * 60 / per_minute)
                ).timestamp(),
            }
            for m in range(24 * 60)
            for k in range(per_minute)
        ]
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("bench"), NOW)
            metrics.ingest(ctx, metrics.parse_json({"samples": samples}, NOW, limits), limits)


def one_by_one(session: Any, match: dict[str, str], statistic: str, start, end, period: int):
    """``metrics.query`` as it was before (the code of commit 738e333): each rollup read as
    an object, its sketch decoded, then merged into its period's with ``DDSketch.merge``,
    the percentile read from the merged sketch."""
    from mechanisms.ops import metrics
    from mechanisms.ops.tables import MetricRollup, MetricSeries

    series_ids = [
        s.id
        for s in session.execute(select(MetricSeries).where(MetricSeries.name == METRIC)).scalars()
        if all(s.labels.get(k) == v for k, v in match.items())
    ]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = start - timedelta(seconds=(start - epoch).total_seconds() % period)
    periods = []
    cursor = first
    while cursor < end:
        periods.append(cursor)
        cursor += timedelta(seconds=period)
    buckets: dict[datetime, metrics.Bucket] = {}
    for start_chunk in range(0, len(series_ids), 500):
        rows = session.execute(
            select(MetricRollup).where(
                MetricRollup.series_id.in_(series_ids[start_chunk : start_chunk + 500]),
                MetricRollup.bucket_start >= first,
                MetricRollup.bucket_start < end,
            )
        ).scalars()
        for row in rows:
            if period % row.resolution:
                continue
            offset = (row.bucket_start - first).total_seconds() // period
            at = first + timedelta(seconds=offset * period)
            bucket = buckets.get(at)
            sketch = metrics.sketch_of(row.sketch) if statistic.startswith("p") else None
            if bucket is None:
                buckets[at] = metrics.Bucket(row.count, row.sum, row.min, row.max, sketch)
            else:
                bucket.add(row.count, row.sum, row.min, row.max, sketch)
    return [(p, buckets[p].value(statistic) if p in buckets else None) for p in periods]


def floor(session: Any, start, end) -> int:
    from mechanisms.ops.tables import MetricRollup

    return len(
        session.execute(
            select(MetricRollup.bucket_start, MetricRollup.count, MetricRollup.sketch).where(
                MetricRollup.bucket_start >= start, MetricRollup.bucket_start < end
            )
        ).all()
    )


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from mechanisms.ops import alarm_view, metrics

    start, end = NOW - timedelta(hours=24), NOW
    period = alarm_view.display_period(60, end - start)
    match = {"service": "checkout"}
    with database(backend, args.pg_url) as db:
        print(f"{backend}: seeding 5 series x 24 h x {args.per_minute}/min", file=sys.stderr)
        seed(db, args.per_minute)
        with db.transaction(write=False) as session:
            ours = metrics.query(session, METRIC, match, "p99", start, end, period)
            old = one_by_one(session, match, "p99", start, end, period)
            assert ours == old, "the two ways differ"
            assert sum(v is not None for _, v in ours) == len(ours)
            timed = {
                "metrics.query": best(
                    args.repeat,
                    lambda: metrics.query(session, METRIC, match, "p99", start, end, period),
                ),
                "one by one (before)": best(
                    args.repeat, lambda: one_by_one(session, match, "p99", start, end, period)
                ),
                "floor: read the rows": best(args.repeat, lambda: floor(session, start, end)),
            }
        return {"backend": backend, "server": server_version(db), "period": period, **timed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-minute", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best kept)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("MECH_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args(argv)
    results = [measure(b, args) for b in args.backends.split(",")]
    report = {"machine": machine(), "load": os.getloadavg()[0], "results": results}
    if args.json:
        text = json.dumps(report, indent=2, default=str)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text)
    print(f"{'backend':<28} {'metrics.query':>14} {'one by one':>12} {'floor':>8} {'speed-up':>9}")
    for r in results:
        print(
            f"{r['backend'] + ' (' + r['server'] + ')':<28} {r['metrics.query']:>13.3f}s"
            f" {r['one by one (before)']:>11.3f}s {r['floor: read the rows']:>7.3f}s"
            f" {r['one by one (before)'] / r['metrics.query']:>8.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
