"""The graph query reads percentiles from the merged bins of the stored sketches: for every
period it gives exactly what decoding each rollup's sketch and merging them one by one with
the library gives, on skewed data over several series (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from mechanisms.ops import alarms, metrics
from mechanisms.ops.tables import MetricRollup, MetricSeries

ROUTES = ("/", "/cart", "/checkout", "/search", "/login")


def record_skewed(run, clock, minutes: int = 90) -> None:
    """Lognormal latencies, a different spread per route; some routes quiet in some
    minutes, a few negative and zero values (a clock step), so periods merge unequal
    sketches with both stores in use."""
    rng = random.Random(11)
    now = clock.now()
    samples = []
    for r, route in enumerate(ROUTES):
        for m in range(minutes):
            if (m + r) % 7 == 0:
                continue
            for k in range(rng.randint(1, 40)):
                value = rng.lognormvariate(3.5 + r * 0.4, 0.5 + r * 0.25)
                if rng.random() < 0.02:
                    value = -value if rng.random() < 0.5 else 0.0
                at = now - timedelta(minutes=minutes - m, seconds=-k)
                samples.append(
                    {
                        "name": "api_latency_ms",
                        "labels": {"service": "checkout", "route": route},
                        "value": round(value, 3),
                        "timestamp": at.timestamp(),
                    }
                )
    run(alarms.ingest_json, {"samples": samples})


def one_by_one(db, statistic: str, start, end, period: int) -> dict:
    """Every rollup's sketch decoded and merged into its period's with DDSketch.merge; the
    library's own quantile, within the period's observed range."""
    q = float(statistic[1:]) / 100
    with db.transaction(write=False) as session:
        ids = select(MetricSeries.id).where(MetricSeries.name == "api_latency_ms")
        rows = session.execute(
            select(MetricRollup)
            .where(MetricRollup.series_id.in_(ids))
            .order_by(MetricRollup.bucket_start, MetricRollup.series_id)
        ).scalars()
        merged: dict = {}
        for row in rows:
            if not start <= row.bucket_start < end:
                continue
            at = start + timedelta(seconds=period) * (
                (row.bucket_start - start) // timedelta(seconds=period)
            )
            sketch = metrics.sketch_of(row.sketch)
            if at in merged:
                found, low, high = merged[at]
                found.merge(sketch)
                merged[at] = (found, min(low, row.min), max(high, row.max))
            else:
                merged[at] = (sketch, row.min, row.max)
    return {
        at: min(max(sketch.get_quantile_value(q), low), high)
        for at, (sketch, low, high) in merged.items()
    }


def test_graph_percentiles_equal_the_one_by_one_merge(db, org, run, clock):
    record_skewed(run, clock)
    end = clock.now().replace(second=0, microsecond=0)
    start = end - timedelta(hours=2)
    compared = 0
    for period in (60, 300, 900):
        for statistic in ("p50", "p90", "p99", "p99.9"):
            points = run(alarms.query, "api_latency_ms", {}, statistic, start, end, period)
            expected = one_by_one(db, statistic, start, end, period)
            got = {at: v for at, v in points if v is not None}
            assert got == expected, (period, statistic)
            compared += len(got)
    assert compared > 400
    # One route alone: the same periods, a narrower merge.
    points = run(alarms.query, "api_latency_ms", {"route": "/login"}, "p99", start, end, 300)
    assert len({v for _, v in points if v is not None}) > 5
