"""The ops pages on both databases: what each shows, who may act, and bad query
parameters answered with a 4xx page (the browser tests drive the same pages in Chromium
on SQLite)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mechanisms.ops import alarms, tickets

DEFINITION = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 300,
    "period_seconds": 60,
    "evaluation_periods": 3,
    "datapoints_to_alarm": 2,
}


@pytest.fixture
def checkout(run, org, clock):
    """Two hours of latency for checkout, slow in the last half hour, and an alarm the
    worker moved into ALARM half an hour ago."""
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(
        alarms.create_alarm,
        "checkout-slow",
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition=DEFINITION,
    )
    clock.advance(hours=2)
    now = clock.now()
    samples = [
        {
            "name": "api_latency_ms",
            "labels": {"service": "checkout", "region": region},
            "value": (500.0 if m < 35 else 100.0) + i,
            "timestamp": (now - timedelta(minutes=m, seconds=10 * i)).timestamp(),
        }
        for m in range(120)
        for i, region in enumerate(("eu", "us"))
    ]
    run(alarms.ingest_json, {"samples": samples})
    clock.advance(minutes=-30)
    assert run(alarms.evaluate_due) == 1
    clock.advance(minutes=30)
    ticket = run(tickets.on_alarm, "checkout-slow", "ALARM", "p99 above 300")
    return {"ticket": ticket.id}


def test_the_alarm_page_draws_the_graph_with_the_alarm_band(client, org, checkout):
    page = client.get("/ops/alarms/checkout-slow?range=1h", headers=org.header("vic"))
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="rule-threshold"' in html
    assert 'data-state="ALARM"' in html
    assert 'x="500.0"' in html, "the ALARM band starts half way across an hour"
    assert "Threshold Crossed" in html


def test_lists_and_explorer_show_what_is_in_the_store(client, org, checkout):
    viewer = org.header("vic")
    listed = client.get("/ops/alarms?state=ALARM&service=checkout", headers=viewer)
    assert listed.status_code == 200 and 'data-alarm="checkout-slow"' in listed.text
    assert (
        'data-alarm="checkout-slow"' not in client.get("/ops/alarms?state=OK", headers=viewer).text
    )
    explored = client.get(
        "/ops/metrics",
        params={
            "metric": "api_latency_ms",
            "match": "region=us",
            "statistic": "max",
            "range": "6h",
        },
        headers=viewer,
    )
    assert explored.status_code == 200
    assert 'data-testid="metric-chart"' in explored.text
    assert "<code>eu</code>, <code>us</code>" in explored.text, "the label values are listed"
    tickets_page = client.get("/ops/tickets?state=open&severity=3", headers=viewer)
    assert f'data-ticket="{checkout["ticket"]}"' in tickets_page.text


def test_only_engineers_of_the_owning_team_act_on_a_ticket(client, org, checkout):
    number = checkout["ticket"]
    seen_by_viewer = client.get(f"/ops/tickets/{number}", headers=org.header("vic"))
    assert 'data-testid="actions"' not in seen_by_viewer.text
    assert 'href="/ops/alarms/checkout-slow"' in seen_by_viewer.text
    refused = client.post(f"/ops/tickets/{number}/acknowledge", headers=org.header("vic"))
    assert refused.status_code == 403
    assert (
        'data-testid="actions"'
        in client.get(f"/ops/tickets/{number}", headers=org.header("eve")).text
    )
    done = client.post(
        f"/ops/tickets/{number}/acknowledge", headers=org.header("eve"), follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == f"/ops/tickets/{number}"
    blank = client.post(
        f"/ops/tickets/{number}/resolve", data={"text": " "}, headers=org.header("eve")
    )
    assert blank.status_code == 422 and "say what fixed it" in blank.text
    nul = client.post(
        f"/ops/tickets/{number}/resolve", data={"text": "a\x00b"}, headers=org.header("eve")
    )
    assert nul.status_code == 422
    assert client.get(f"/api/v1/ops/tickets/{number}", headers=org.header("eve")).json()[
        "state"
    ] == ("acknowledged")


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("/ops/alarms?state=FIRING", 422),
        ("/ops/alarms?service=nope", 422),
        ("/ops/alarms/checkout-slow?range=2y", 422),
        ("/ops/alarms/" + "x" * 3000, 404),
        ("/ops/tickets?state=closed", 422),
        ("/ops/tickets?severity=0", 422),
        ("/ops/tickets/2147483648", 422),
        ("/ops/metrics?metric=api_latency_ms&match=region", 422),
        ("/ops/metrics?metric=api_latency_ms&statistic=p1000", 422),
    ],
)
def test_bad_query_parameters_are_a_4xx_page(client, org, checkout, address, status):
    page = client.get(address, headers=org.header("vic"))
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")


def test_a_resolved_high_severity_ticket_is_promoted_from_its_page(client, org, run, checkout):
    eve = org.header("eve")
    sev1 = run(tickets.create, "checkout", "checkout down", 1).id
    assert 'data-testid="promote"' not in client.get(f"/ops/tickets/{sev1}", headers=eve).text
    run(tickets.resolve, sev1, "rolled back")
    assert 'data-testid="promote"' in client.get(f"/ops/tickets/{sev1}", headers=eve).text
    assert (
        'data-testid="promote"'
        not in client.get(f"/ops/tickets/{sev1}", headers=org.header("vic")).text
    )
    promoted = client.post(
        f"/ops/tickets/{sev1}/promote",
        data={"summary": "a canary stage for checkout"},
        headers=eve,
        follow_redirects=False,
    )
    assert promoted.status_code == 303
    page = client.get(f"/ops/tickets/{sev1}", headers=eve).text
    assert 'data-testid="promote"' not in page and "a canary stage for checkout" in page
    again = client.post(f"/ops/tickets/{sev1}/promote", data={"summary": "twice"}, headers=eve)
    assert again.status_code == 409
