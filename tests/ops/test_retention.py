"""Retention and downsampling of the metrics store: old minute rollups fold into hourly
ones that answer the same questions, exactly once, however the job is interrupted; what is
past retention goes; queries and alarms read both resolutions."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mechanisms.core.config import Settings
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, metrics, retention
from mechanisms.ops.tables import MetricRollup

STATISTICS = ("count", "sum", "avg", "min", "max", "p50", "p99")
AGES = retention.Ages(minute_rollups=timedelta(hours=48), retention=timedelta(days=90))


def record(ctx, start, minutes: int, services=("checkout", "search"), seed: int = 1) -> None:
    """``minutes`` minutes from ``start`` of skewed latencies, five samples a minute."""
    rng = random.Random(seed)
    limits = metrics.IngestLimits(late_window=timedelta(days=200))
    samples = [
        {
            "name": "api_latency_ms",
            "labels": {"service": service},
            "value": round(rng.lognormvariate(4.5, 0.8), 3),
            "timestamp": (start + timedelta(minutes=m, seconds=5 + 10 * k)).timestamp(),
        }
        for service in services
        for m in range(minutes)
        for k in range(5)
    ]
    metrics.ingest(ctx, metrics.parse_json({"samples": samples}, ctx.now, limits), limits)


def rollups(db, resolution: int) -> int:
    with db.transaction(write=False) as session:
        return session.execute(
            select(func.count()).where(MetricRollup.resolution == resolution)
        ).scalar_one()


def answers(db, start, end, period, match=None) -> dict[str, list]:
    with db.transaction(write=False) as session:
        return {
            s: metrics.query(session, "api_latency_ms", match or {}, s, start, end, period)
            for s in STATISTICS
        }


def fold_all(db, now, ages=AGES, limit=retention.BATCH_ROWS) -> int:
    folded = 0
    while True:
        with db.transaction() as session:
            moved = retention.fold_batch(session, now, ages, limit)
        if not moved:
            return folded
        folded += moved


@pytest.fixture
def old_hours(db, run, clock):
    """Three whole hours three days ago, and the last two hours, for two services."""
    old = clock.now().replace(minute=0) - timedelta(days=3)
    run(record, old, 180)
    run(record, clock.now() - timedelta(hours=2), 120, seed=2)
    return old


def test_old_minutes_fold_into_hours_that_give_the_same_answers(db, clock, old_hours):
    hours = (old_hours, old_hours + timedelta(hours=3))
    before = answers(db, *hours, 3600)
    by_service = answers(db, *hours, 3600, {"service": "search"})
    recent = answers(db, clock.now() - timedelta(hours=2), clock.now(), 60)
    assert rollups(db, 60) == 2 * 300 and rollups(db, 3600) == 0

    assert fold_all(db, clock.now()) == 2 * 3  # (series, hour) groups
    assert rollups(db, 3600) == 2 * 3 and rollups(db, 60) == 2 * 120
    after = answers(db, *hours, 3600)
    for statistic in STATISTICS:
        assert [at for at, _ in after[statistic]] == [at for at, _ in before[statistic]]
        assert [v for _, v in after[statistic]] == pytest.approx(
            [v for _, v in before[statistic]], rel=1e-12
        ), statistic
    assert answers(db, *hours, 3600, {"service": "search"}) == by_service
    assert answers(db, clock.now() - timedelta(hours=2), clock.now(), 60) == recent
    # A minute (or five) of a folded hour is no longer known: missing, never the hour's value.
    minutes = answers(db, *hours, 300)
    assert all(value is None for _, value in minutes["avg"])
    assert fold_all(db, clock.now()) == 0, "a second run finds nothing to fold"
    assert answers(db, *hours, 3600) == after


def test_a_crash_in_the_middle_of_a_fold_counts_nothing_twice(db, clock, old_hours):
    hours = (old_hours, old_hours + timedelta(hours=3))
    before = answers(db, *hours, 3600)

    class Killed(Exception):
        pass

    with pytest.raises(Killed), db.transaction() as session:
        assert retention.fold_batch(session, clock.now(), AGES) > 0
        raise Killed  # the process dies before the commit
    assert rollups(db, 3600) == 0 and rollups(db, 60) == 2 * 300
    # Small batches: series by series, a group that runs past the limit left for the next.
    assert fold_all(db, clock.now(), limit=70) == 6
    after = answers(db, *hours, 3600)
    for statistic in STATISTICS:
        assert [at for at, _ in after[statistic]] == [at for at, _ in before[statistic]]
        assert [v for _, v in after[statistic]] == pytest.approx(
            [v for _, v in before[statistic]], rel=1e-12
        ), statistic


def test_rollups_past_retention_are_deleted(db, run, clock):
    run(record, clock.now() - timedelta(days=91), 30)
    run(record, clock.now() - timedelta(days=89), 30, seed=3)
    fold_all(db, clock.now())
    assert rollups(db, 3600) == 4
    with db.transaction() as session:
        assert retention.expire_batch(session, clock.now(), AGES) == 2
    assert rollups(db, 3600) == 2
    start = clock.now() - timedelta(days=92)
    left = answers(db, start, clock.now(), 86400)["count"]
    assert sum(v or 0 for _, v in left) == 2 * 30 * 5


def test_the_worker_job_downsamples_and_alarms_read_the_hours(db, run, clock, org):
    run(alarms.create_service, "checkout", "Checkout", "payments")
    start = clock.now() - timedelta(hours=4)
    run(record, start, 240, services=("checkout",))
    hourly = {
        "statistic": "count",
        "comparison": "GreaterThanThreshold",
        "threshold": 250,
        "period_seconds": 3600,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 3,
    }
    per_minute = {
        **hourly,
        "threshold": 4,
        "period_seconds": 60,
        "evaluation_periods": 1,
        "datapoints_to_alarm": 1,
        "evaluation_range_periods": 1,
    }
    match = {"service": "checkout"}
    settings = Settings(metrics_minute_rollups_hours=1)
    worker = Worker(db, clock=clock, settings=settings)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    assert rollups(db, 3600) == 3 and rollups(db, 60) == 60
    run(
        alarms.create_alarm,
        "checkout-busy-hours",
        "checkout",
        metric="api_latency_ms",
        match=match,
        definition=hourly,
    )
    run(alarms.evaluate_due)
    alarm = run(alarms.get_alarm, "checkout-busy-hours")
    assert alarm.state == "ALARM", alarm.state_reason  # 300 samples an hour, from hourly rows
    # A one-minute alarm over the folded hours sees no datapoint, not an hour's count.
    clock.advance(hours=-2)
    run(
        alarms.create_alarm,
        "checkout-busy-minute",
        "checkout",
        metric="api_latency_ms",
        match=match,
        definition=per_minute,
    )
    run(alarms.evaluate_due)
    assert run(alarms.get_alarm, "checkout-busy-minute").state == "INSUFFICIENT_DATA"
