"""The synthetic metrics generator: off unless enabled, deterministic given its seed and
the clock, shaped like a service (skewed latencies, a daily rhythm, incidents that fire
an alarm which then recovers), and bounded when it catches up after downtime."""

from __future__ import annotations

import logging
import statistics
import threading
from datetime import UTC, datetime, timedelta

import pytest

from mechanisms.core import accounts
from mechanisms.core.errors import Forbidden, NotFound
from mechanisms.core.identity import Principal
from mechanisms.core.worker import Worker
from mechanisms.ops import EvaluateAlarms, alarms, synthetic
from mechanisms.ops.synthetic import ServiceProfile, SyntheticConfig
from tests.conftest import Org

CHECKOUT = ServiceProfile(service="checkout", latency_ms=100, cpu_percent=50)
QUIET = SyntheticConfig(seed=3, services=[CHECKOUT], incident_every_hours=0)
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(count)]


# --- the shapes ---------------------------------------------------------------------


def test_a_minute_depends_only_on_the_seed_the_service_and_the_minute():
    at = DAY + timedelta(hours=10)
    first = synthetic.minute_of(QUIET, CHECKOUT, at)
    assert synthetic.minute_of(QUIET, CHECKOUT, at) == first
    assert synthetic.minute_of(QUIET.model_copy(update={"seed": 4}), CHECKOUT, at) != first
    assert synthetic.minute_of(QUIET, CHECKOUT, at + timedelta(minutes=1)) != first


def test_latencies_are_skewed_and_follow_the_day():
    def latencies(hour: int) -> list[float]:
        return [
            v
            for m in minutes(DAY + timedelta(hours=hour), 60)
            for v in synthetic.minute_of(QUIET, CHECKOUT, m).latencies
        ]

    afternoon, night = latencies(14), latencies(2)
    # Lognormal: a long right tail pulls the mean above the median.
    assert statistics.mean(afternoon) > statistics.median(afternoon) * 1.05
    # The busiest hour is slower, and has more requests, than the quietest.
    assert statistics.median(afternoon) > statistics.median(night) * 1.2
    assert len(afternoon) > len(night) * 1.5
    assert 80 < statistics.median(afternoon) < 150


def test_cpu_follows_the_load_and_stays_a_percentage():
    def cpu(hour: int) -> float:
        return statistics.mean(
            synthetic.minute_of(QUIET, CHECKOUT, m).cpu
            for m in minutes(DAY + timedelta(hours=hour), 60)
        )

    assert cpu(14) == pytest.approx(50 * 1.35, abs=2)
    assert cpu(2) == pytest.approx(50 * 0.65, abs=2)
    busy = ServiceProfile(service="checkout", latency_ms=100, cpu_percent=95)
    assert all(
        0 < synthetic.minute_of(QUIET, busy, m).cpu <= 100
        for m in minutes(DAY + timedelta(hours=14), 60)
    )


def test_incidents_come_once_per_window_at_a_place_the_seed_decides():
    config = QUIET.model_copy(update={"incident_every_hours": 8, "incident_minutes": 15})
    day = minutes(DAY, 24 * 60)
    hit = [m for m in day if synthetic.in_incident(config, "checkout", m)]
    assert len(hit) == 3 * 15
    assert hit != [
        m
        for m in day
        if synthetic.in_incident(config.model_copy(update={"seed": 9}), "checkout", m)
    ]
    during = [synthetic.minute_of(config, CHECKOUT, m) for m in hit[:15]]
    before = [synthetic.minute_of(config, CHECKOUT, m - timedelta(minutes=15)) for m in hit[:15]]
    assert all(m.incident for m in during) and not any(m.incident for m in before)

    def median(group):
        return statistics.median(v for m in group for v in m.latencies)

    assert median(during) > 4 * median(before)
    assert statistics.mean(m.cpu for m in during) > statistics.mean(m.cpu for m in before) + 15


# --- the generator in the store -----------------------------------------------------


@pytest.fixture
def checkout(run, org: Org):
    run(alarms.create_service, "checkout", "Checkout", "payments")


def stored_minutes(
    run, start: datetime, end: datetime, statistic: str = "count"
) -> list[float | None]:
    return [
        v
        for _, v in run(
            alarms.query,
            synthetic.LATENCY_METRIC,
            {"service": "checkout"},
            statistic,
            start,
            end,
            60,
        )
    ]


def tick(db, clock) -> int:
    worker = Worker(db, clock=clock, jobs=[synthetic.GenerateSyntheticMetrics(), EvaluateAlarms()])
    try:
        return worker.tick()
    finally:
        worker.close()


def test_nothing_is_generated_until_the_generator_is_enabled(db, clock, run, checkout):
    assert run(synthetic.configuration) is None
    assert tick(db, clock) == 0
    assert stored_minutes(run, clock.now() - timedelta(hours=3), clock.now()) == [None] * 180


def test_enabling_backfills_then_each_minute_follows(db, clock, run, checkout):
    config = QUIET.model_copy(update={"backfill_minutes": 120})
    run(synthetic.enable, config)
    now = clock.now()
    assert tick(db, clock) == 120
    counts = stored_minutes(run, now - timedelta(hours=3), now)
    assert counts[:60] == [None] * 60
    assert counts[60:] == [
        len(synthetic.minute_of(config, CHECKOUT, m).latencies)
        for m in minutes(now - timedelta(hours=2), 120)
    ]
    assert tick(db, clock) == 0
    clock.advance(minutes=3, seconds=20)
    assert tick(db, clock) == 3


def test_what_is_stored_is_what_the_seed_and_the_clock_say(db, clock, run, checkout):
    config = QUIET.model_copy(update={"backfill_minutes": 30})
    run(synthetic.enable, config)
    tick(db, clock)
    start = clock.now() - timedelta(minutes=30)
    sums = stored_minutes(run, start, clock.now(), "sum")
    expected = [sum(synthetic.minute_of(config, CHECKOUT, m).latencies) for m in minutes(start, 30)]
    assert sums == pytest.approx(expected)


def test_catching_up_after_downtime_is_bounded(db, clock, run, checkout):
    run(synthetic.enable, QUIET.model_copy(update={"backfill_minutes": 10, "catch_up_minutes": 30}))
    tick(db, clock)
    down_at = clock.now()
    clock.advance(hours=5)
    assert tick(db, clock) == 30
    counts = stored_minutes(run, down_at, clock.now())
    # The last half hour is back; the rest of the outage stays a gap.
    assert None not in counts[-30:]
    assert counts[: 5 * 60 - 30] == [None] * (5 * 60 - 30)


def test_disabling_stops_it(db, clock, run, checkout):
    run(synthetic.enable, QUIET.model_copy(update={"backfill_minutes": 5}))
    tick(db, clock)
    run(synthetic.disable)
    clock.advance(minutes=10)
    assert tick(db, clock) == 0
    assert run(synthetic.configuration) is None


def test_only_engineers_enable_it_and_only_for_services_that_exist(run, checkout):
    vic = run(lambda ctx: accounts.get_user(ctx, "vic"))
    viewer = Principal(user_id=vic.id, username="vic", via="session")
    with pytest.raises(Forbidden):
        run(synthetic.enable, QUIET, as_=viewer)

    def engineer_elsewhere(ctx):
        accounts.create_team(ctx, "search", "Search", parent="acme")
        user = accounts.create_user(ctx, "sam")
        accounts.set_membership(ctx, "search", "sam", "engineer")
        return Principal(user_id=user.id, username="sam", via="session")

    sam = run(engineer_elsewhere)
    with pytest.raises(Forbidden):
        run(synthetic.enable, QUIET, as_=sam)
    with pytest.raises(NotFound):
        run(
            synthetic.enable,
            SyntheticConfig(services=[ServiceProfile(service="nope", latency_ms=1, cpu_percent=1)]),
        )
    assert run(synthetic.configuration) is None


def test_an_incident_fires_an_alarm_which_recovers(db, clock, run, checkout):
    config = QUIET.model_copy(
        update={"incident_every_hours": 4, "incident_minutes": 15, "backfill_minutes": 30}
    )
    day = minutes(clock.now(), 8 * 60)
    incident = next(
        m
        for m in day
        if synthetic.in_incident(config, "checkout", m) and m > clock.now() + timedelta(hours=1)
    )
    clock.set(incident - timedelta(minutes=20))
    run(synthetic.enable, config)
    run(
        alarms.create_alarm,
        "checkout-p99",
        "checkout",
        metric=synthetic.LATENCY_METRIC,
        match={"service": "checkout"},
        definition={
            "statistic": "p99",
            "comparison": "GreaterThanThreshold",
            "threshold": 800,
            "period_seconds": 60,
            "evaluation_periods": 5,
            "datapoints_to_alarm": 3,
        },
    )
    states = []
    for _ in range(50):
        tick(db, clock)
        states.append(run(alarms.get_alarm, "checkout-p99").state)
        clock.advance(minutes=1)
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes == ["OK", "ALARM", "OK"]


def test_two_workers_at_once_write_each_minute_once(db, clock, run, checkout, caplog):
    config = QUIET.model_copy(update={"backfill_minutes": 60})
    run(synthetic.enable, config)
    barrier = threading.Barrier(2)

    def one_worker() -> None:
        barrier.wait()
        tick(db, clock)

    for _ in range(2):
        threads = [threading.Thread(target=one_worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock.advance(minutes=2)
    start = clock.now() - timedelta(minutes=64)
    counts = stored_minutes(run, start, clock.now() - timedelta(minutes=2))
    expected = [len(synthetic.minute_of(config, CHECKOUT, m).latencies) for m in minutes(start, 62)]
    assert counts == expected
    # Neither stumbled over the other (a unique-key violation, a lock timeout).
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
