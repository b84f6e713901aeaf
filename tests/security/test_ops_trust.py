"""Issue #14, items 5, 10 and 11: writing metrics is a permission, recurrences are bounded,
and the server fetches only where it should. Each test performs the attack."""

from __future__ import annotations

import pytest

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.ops import alarms

LATENCY = {
    "statistic": "max",
    "comparison": "GreaterThanThreshold",
    "threshold": 500,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
}


@pytest.fixture
def outsiders(db, clock, org) -> dict[str, dict[str, str]]:
    """Sam engineers another team of acme (search); Gus engineers another organisation."""
    headers = {}
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        accounts.create_team(ctx, "search", "Search", parent="acme")
        accounts.create_team(ctx, "globex", "Globex")
        for username, team in (("sam", "search"), ("gus", "globex")):
            accounts.create_user(ctx, username, password="correct horse battery")
            accounts.set_membership(ctx, team, username, "engineer")
            token = accounts.create_token(ctx, username, "metrics", "engineer")[1]
            headers[username] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
def watched(run, org, outsiders) -> None:
    """checkout (payments) with an alarm on its latency, OK; search belongs to sam's team."""
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(alarms.create_service, "search", "Search", "search")
    run(
        alarms.create_alarm,
        "checkout-slow",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=LATENCY,
    )


def _spike(clock, *services: str) -> dict:
    return {
        "samples": [
            {"name": "api_latency_ms", "labels": {"service": s}, "value": 9000.0} for s in services
        ]
    }


def _alarm_after_a_tick(run, clock) -> str:
    clock.advance(minutes=1)
    run(alarms.evaluate_due)
    return run(alarms.get_alarm, "checkout-slow").state


@pytest.mark.parametrize("who", ["sam", "gus", "vic", "ada-viewer-scope"], ids=lambda w: f"as-{w}")
def test_nobody_outside_the_owning_team_can_push_samples_that_move_its_alarm(
    client, run, clock, org, outsiders, watched, who
):
    headers = outsiders.get(who) or org.header(who)
    run(alarms.evaluate_due)
    sent = client.post("/api/v1/ops/metrics", json=_spike(clock, "checkout"), headers=headers)
    assert sent.status_code == 403, sent.text
    text = 'api_latency_ms{service="checkout"} 9000\n'
    prom = client.post(
        "/api/v1/ops/metrics/prometheus",
        content=text,
        headers={**headers, "content-type": "text/plain"},
    )
    assert prom.status_code == 403, prom.text
    assert _alarm_after_a_tick(run, clock) != "ALARM"


def test_a_batch_that_mixes_services_is_refused_whole_naming_each_refused_one(
    client, run, clock, org, watched
):
    sent = client.post(
        "/api/v1/ops/metrics",
        json=_spike(clock, "checkout", "search", "checkout"),
        headers=org.header("eve"),
    )
    assert sent.status_code == 403
    error = sent.json()["error"]
    assert error["details"]["services"] == ["search"] and "nothing was stored" in error["message"]
    assert _alarm_after_a_tick(run, clock) != "ALARM"


def test_the_owning_teams_engineer_still_moves_the_alarm(client, run, clock, org, watched):
    for who in ("eve", "robot"):
        sent = client.post(
            "/api/v1/ops/metrics", json=_spike(clock, "checkout"), headers=org.header(who)
        )
        assert sent.status_code == 202, sent.text
    # Samples for no registered service stay open to engineers of the site.
    other = {"samples": [{"name": "queue_depth", "labels": {"queue": "x"}, "value": 1}]}
    assert (
        client.post("/api/v1/ops/metrics", json=other, headers=org.header("eve")).status_code == 202
    )
    assert _alarm_after_a_tick(run, clock) == "ALARM"
