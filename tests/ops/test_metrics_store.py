"""The built-in metrics store on SQLite and PostgreSQL: ingest, rollups, percentiles from
sketches, and batches refused whole when anything in them is wrong."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from mechanisms.core.errors import InvalidInput
from mechanisms.ops import alarms, metrics
from mechanisms.ops.tables import MetricRollup, MetricSeries


def samples(clock, values, name="api_latency_ms", labels=None, spacing_ms=50):
    now = clock.now()
    return {
        "samples": [
            {
                "name": name,
                "labels": labels or {"service": "checkout"},
                "value": v,
                "timestamp": (now - timedelta(milliseconds=spacing_ms * i)).timestamp(),
            }
            for i, v in enumerate(values)
        ]
    }


def stored(db) -> tuple[int, int]:
    with db.transaction(write=False) as session:
        return (
            session.execute(select(func.count()).select_from(MetricSeries)).scalar_one(),
            session.execute(select(func.count()).select_from(MetricRollup)).scalar_one(),
        )


def test_percentiles_come_from_sketches_within_one_percent(db, org, run, clock):
    rng = random.Random(5)
    values = [rng.lognormvariate(5, 1.2) for _ in range(20_000)]  # skewed, like latency
    result = run(alarms.ingest_json, samples(clock, values, spacing_ms=20))
    assert (result.accepted, result.series_created) == (20_000, 1)
    start = clock.now() - timedelta(minutes=10)
    for p in (50, 90, 99):
        ((_, got),) = run(
            alarms.query,
            "api_latency_ms",
            {},
            f"p{p}",
            start,
            clock.now() + timedelta(minutes=1),
            86_400,
        )
        exact = float(np.percentile(values, p, method="lower"))
        assert abs(got - exact) / exact <= 0.01, (p, got, exact)
    ((_, avg),) = run(
        alarms.query, "api_latency_ms", {}, "avg", start, clock.now() + timedelta(minutes=1), 86_400
    )
    assert avg == pytest.approx(sum(values) / len(values))


def test_out_of_order_samples_join_their_minute_and_exact_repeats_count_once(db, org, run, clock):
    batch = samples(clock, [10.0, 20.0, 30.0])
    batch["samples"].append(dict(batch["samples"][0]))  # the same sample again
    assert run(alarms.ingest_json, batch).duplicates == 1
    late = samples(clock, [40.0])
    late["samples"][0]["timestamp"] = (clock.now() - timedelta(seconds=1)).timestamp()
    run(alarms.ingest_json, late)
    ((_, count),) = run(
        alarms.query,
        "api_latency_ms",
        {},
        "count",
        clock.now() - timedelta(minutes=1),
        clock.now() + timedelta(seconds=1),
        86_400,
    )
    assert count == 4


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda s: s.update(value=float("nan")), "finite"),
        (lambda s: s.update(value="12"), "value must be a number"),
        (lambda s: s.update(name="api-latency"), "not a valid Prometheus metric name"),
        (lambda s: s.update(labels={"__name__": "x"}), "label name"),
        (lambda s: s.update(timestamp="yesterday"), "timestamp"),
        (lambda s: s.update(timestamp=1.0), "older than the accepted window"),
    ],
)
def test_a_bad_sample_refuses_the_whole_batch_naming_it(db, org, run, clock, change, problem):
    batch = samples(clock, [1.0, 2.0, 3.0])
    change(batch["samples"][1])
    with pytest.raises(InvalidInput) as refused:
        run(alarms.ingest_json, batch)
    assert problem in refused.value.message and "sample 1" in refused.value.message
    assert stored(db) == (0, 0)


def test_two_values_at_one_instant_are_refused(db, org, run, clock):
    batch = samples(clock, [1.0, 2.0])
    batch["samples"][1]["timestamp"] = batch["samples"][0]["timestamp"]
    with pytest.raises(InvalidInput, match="two values"):
        run(alarms.ingest_json, batch)


def test_label_cardinality_beyond_the_limit_is_refused(db, org, run, clock):
    limits = metrics.IngestLimits(max_series_per_metric=50)
    batch = {
        "samples": [
            {"name": "requests", "labels": {"user": f"u{i}"}, "value": 1} for i in range(60)
        ]
    }
    with pytest.raises(InvalidInput) as refused:
        run(alarms.ingest_json, batch, limits)
    assert (
        "cardinality" in refused.value.message
        and refused.value.details["problems"][0]["metric"] == "requests"
    )
    assert stored(db) == (0, 0)


def test_prometheus_text(db, org, run, clock):
    text = (
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{method="post",code="200"} 1027\n'
        'http_requests_total{method="post",code="400"} 3\n'
        "cpu_utilisation 0.42\n"
    )
    result = run(alarms.ingest_prometheus, text)
    assert (result.accepted, result.series_created) == (3, 3)
    with pytest.raises(InvalidInput) as refused:
        run(alarms.ingest_prometheus, "good_metric 1\nbad_metric{oops 2\nalso_good 3\n")
    assert "line 2" in refused.value.message
    with pytest.raises(InvalidInput, match="finite"):
        run(alarms.ingest_prometheus, "cpu NaN\n")
