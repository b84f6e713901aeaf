"""Alarm evaluation with anomaly bands learnt from the store's history, and scheduled
silences: silenced alarms still move and record it, but cut no ticket until the silence is
over; rollouts still roll back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from mechanisms.core.errors import InvalidInput
from mechanisms.core.tables import Event
from mechanisms.core.worker import Worker
from mechanisms.flags import deployments
from mechanisms.flags import service as flags
from mechanisms.ops import alarms, baselines, metrics, silences, tickets

BAND = {
    "statistic": "avg",
    "comparison": "LessThanLowerOrGreaterThanUpperThreshold",
    "band_width": 3,
    "period_seconds": 60,
    "evaluation_periods": 3,
    "datapoints_to_alarm": 3,
    "baseline": {"seasonality": "hour_of_day", "days": 2},
}
P99_OVER_500 = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 500,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
}


def record(ctx, minutes: list[tuple[datetime, float]]) -> None:
    """One sample in the middle of each minute, accepted however old."""
    limits = metrics.IngestLimits(late_window=timedelta(days=30))
    raw = {
        "samples": [
            {
                "name": "api_latency_ms",
                "labels": {"service": "checkout"},
                "value": value,
                "timestamp": (at + timedelta(seconds=30)).timestamp(),
            }
            for at, value in minutes
        ]
    }
    metrics.ingest(ctx, metrics.parse_json(raw, ctx.now, limits), limits)


def daily_pattern(at: datetime) -> float:
    """Quiet mornings (UTC), busy afternoons, a little jitter."""
    return (100.0 if at.hour < 12 else 300.0) + (at.minute % 7) - 3


@pytest.fixture
def checkout(org, run):
    run(alarms.create_service, "checkout", "Checkout", "payments")


def test_an_anomaly_band_learns_the_daily_pattern_from_the_store(db, run, clock, checkout):
    clock.advance(hours=4)  # 13:00 on a Monday
    start = clock.now() - timedelta(days=2)
    history = [(start + timedelta(minutes=i), 0.0) for i in range(2 * 24 * 60)]
    run(record, [(at, daily_pattern(at)) for at, _ in history])
    run(
        alarms.create_alarm,
        "checkout-unusual",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=BAND,
        severity=3,
    )

    def minutes(values: list[float]) -> None:
        for value in values:
            run(record, [(clock.now(), value)])
            clock.advance(minutes=1)
            run(alarms.evaluate_due)

    minutes([300, 302, 299])  # an ordinary afternoon
    assert run(alarms.get_alarm, "checkout-unusual").state == "OK"
    minutes([100, 101, 99])  # a morning's latency, in the afternoon: unusual
    alarm = run(alarms.get_alarm, "checkout-unusual")
    assert alarm.state == "ALARM"
    decided = run(alarms.history, "checkout-unusual")[0]
    assert decided.to_state == "ALARM"
    lower, upper = decided.datapoints[0]["band"]
    assert 280 < lower < 300 < upper < 320, "the band is the afternoon's, not the day's"
    assert all(p["breaching"] for p in decided.datapoints)


def test_an_anomaly_alarm_without_history_has_insufficient_data(db, run, clock, checkout):
    run(
        alarms.create_alarm,
        "checkout-unusual",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=BAND,
        severity=3,
    )
    clock.advance(minutes=5)  # data this hour only: the band learns from earlier hours
    run(record, [(clock.now() - timedelta(minutes=2), 100.0)])
    run(alarms.evaluate_due)
    assert run(alarms.get_alarm, "checkout-unusual").state == "INSUFFICIENT_DATA"


@pytest.mark.parametrize(
    "definition, field",
    [
        ({**P99_OVER_500, "baseline": {"days": 3}}, "definition.baseline"),
        ({**BAND, "baseline": {"time_zone": "Mars/Olympus"}}, "definition.baseline.time_zone"),
        ({**BAND, "baseline": {"days": 90}}, "definition.baseline.days"),
        ({**BAND, "band_width": None}, "definition.band_width"),
    ],
)
def test_a_bad_anomaly_definition_names_its_field(db, run, checkout, definition, field):
    with pytest.raises(InvalidInput) as refused:
        run(alarms.create_alarm, "bad", "checkout", metric="api_latency_ms", definition=definition)
    assert refused.value.details["field"] == field


def _latency_alarm(run) -> None:
    run(
        alarms.create_alarm,
        "checkout-latency",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=P99_OVER_500,
        severity=2,
    )


def _state_events(db) -> list[dict]:
    with db.transaction(write=False) as session:
        return [
            e.payload
            for e in session.execute(
                select(Event).where(Event.type == "alarms.state_changed").order_by(Event.id)
            ).scalars()
        ]


def test_a_silenced_alarm_moves_but_cuts_its_ticket_only_when_the_silence_ends(
    db, run, clock, checkout
):
    _latency_alarm(run)
    # 09:00 UTC is 10:00 in Berlin: silenced from 09:30 to 10:30 Berlin time.
    run(
        silences.create,
        "db-maintenance",
        silences.Schedule(
            "2026-01-05T09:30:00",
            "2026-01-05T10:30:00",
            "Europe/Berlin",
            None,
            ("checkout-latency",),
        ),
    )
    worker = Worker(db, clock=clock)
    try:
        for _ in range(3):
            run(record, [(clock.now(), 1200.0)])
            clock.advance(minutes=1)
            worker.run_until_idle()
        assert run(alarms.get_alarm, "checkout-latency").state == "ALARM"
        assert [t.to_state for t in run(alarms.history, "checkout-latency")][:1] == ["ALARM"]
        moved = _state_events(db)[-1]
        assert moved["state"] == "ALARM" and moved["silenced"] is True
        assert moved["silence"] == "db-maintenance"
        assert run(tickets.list_tickets) == [], "the silence held the ticket back"

        clock.advance(minutes=28)  # 09:31 UTC: the silence ended at 09:30
        run(record, [(clock.now() - timedelta(minutes=1), 1300.0)])
        worker.run_until_idle()
    finally:
        worker.close()
    assert run(alarms.get_alarm, "checkout-latency").state == "ALARM"
    [ticket] = run(tickets.list_tickets)
    assert ticket.alarm == "checkout-latency" and ticket.severity == 2
    timeline = run(tickets.timeline, ticket.id)
    assert "silence db-maintenance ended" in timeline[0].text
    assert sum(1 for e in _state_events(db) if e.get("released")) == 1


def test_an_alarm_that_recovers_inside_its_silence_never_cuts_a_ticket(db, run, clock, checkout):
    _latency_alarm(run)
    run(
        silences.create,
        "deploy-window",
        silences.Schedule("2026-01-05T08:00:00", "2026-01-05T10:00:00", "UTC", None, ()),
    )
    worker = Worker(db, clock=clock)
    try:
        run(record, [(clock.now(), 1200.0)])
        clock.advance(minutes=1)
        worker.run_until_idle()
        assert run(alarms.get_alarm, "checkout-latency").state == "ALARM"
        run(record, [(clock.now(), 100.0)])
        clock.advance(minutes=1)
        worker.run_until_idle()
        assert run(alarms.get_alarm, "checkout-latency").state == "OK"
        clock.advance(hours=2)
        run(record, [(clock.now() - timedelta(minutes=1), 100.0)])
        worker.run_until_idle()
    finally:
        worker.close()
    assert run(tickets.list_tickets) == []
    assert [e["state"] for e in _state_events(db)] == ["ALARM", "OK"]


def test_a_silence_does_not_stop_a_rollback(db, run, clock, checkout):
    _latency_alarm(run)
    run(
        silences.create,
        "quiet-night",
        silences.Schedule("2026-01-05T00:00:00", "2026-01-05T23:00:00", "UTC", "FREQ=DAILY", ()),
    )
    run(flags.create_app, "shop", "Shop", "payments")
    run(flags.create_flag, "shop", "checkout-v2")
    on = {
        "variants": {"on": True, "off": False},
        "off_variant": "off",
        "fallthrough": {"variant": "on"},
    }
    run(
        flags.set_config,
        "shop",
        "checkout-v2",
        "beta",
        on,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
    )
    worker = Worker(db, clock=clock)
    try:
        run(record, [(clock.now(), 1200.0)])
        clock.advance(minutes=1)
        worker.run_until_idle()
    finally:
        worker.close()
    assert _state_events(db)[-1]["silenced"] is True
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert deployment.state == "rolled_back" and "checkout-latency" in deployment.reason
    assert run(tickets.list_tickets) == []


def test_silences_over_http(client, org, clock):
    admin, viewer = org.header("ada"), org.header("vic")
    assert (
        client.post(
            "/api/v1/ops/services",
            json={"key": "checkout", "owner_team": "payments"},
            headers=admin,
        ).status_code
        == 201
    )
    body = {
        "name": "weekly-maintenance",
        "start": "2026-01-05T09:30:00",
        "end": "2026-01-05T11:00:00",
        "time_zone": "Europe/Berlin",
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "comment": "database upgrades",
    }
    created = client.post("/api/v1/ops/silences", json=body, headers=admin)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["active"] is True and shown["alarms"] == []
    assert shown["window_start"].startswith("2026-01-05T08:30:00")
    assert client.post("/api/v1/ops/silences", json=body, headers=admin).status_code == 409
    next_week = {**body, "start": "2026-01-12T09:30:00", "end": "2026-01-12T11:00:00"}
    del next_week["name"]
    changed = client.put("/api/v1/ops/silences/weekly-maintenance", json=next_week, headers=admin)
    assert changed.status_code == 200 and changed.json()["active"] is False
    listed = client.get("/api/v1/ops/silences", headers=admin).json()
    assert [s["name"] for s in listed] == ["weekly-maintenance"]
    bad = client.post(
        "/api/v1/ops/silences",
        json={**body, "name": "x", "time_zone": "Nowhere/City"},
        headers=admin,
    )
    assert bad.status_code in (400, 422) and bad.json()["error"]["details"]["field"] == "time_zone"
    unknown = client.post(
        "/api/v1/ops/silences", json={**body, "name": "y", "alarms": ["ghost"]}, headers=admin
    )
    assert unknown.status_code in (400, 422)
    assert unknown.json()["error"]["details"]["field"] == "alarms"
    assert (
        client.delete("/api/v1/ops/silences/weekly-maintenance", headers=admin).status_code == 204
    )
    assert client.get("/api/v1/ops/silences/weekly-maintenance", headers=admin).status_code == 404
    assert client.get("/api/v1/ops/silences", headers=viewer).status_code == 200
    refused = client.post("/api/v1/ops/silences", json={**body, "name": "z"}, headers=viewer)
    assert refused.status_code == 403


def test_baseline_settings_fill_in_their_defaults(db, run, checkout):
    alarm = run(
        alarms.create_alarm,
        "checkout-unusual",
        "checkout",
        metric="api_latency_ms",
        definition={**BAND, "baseline": {}},
    )
    assert alarm.definition["baseline"] == baselines.BaselineSettings().model_dump(mode="json")
