"""Alerts from existing tools: Alertmanager's webhook (payload version 4) and PagerDuty's
Events API v2 (driven by PagerDuty's own Python client) cut and resolve tickets."""

from __future__ import annotations

import ssl
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pagerduty
import pytest

from mechanisms.app import create_app
from mechanisms.core.config import Settings
from tests.support.server import serving

AM = "/api/v1/ops/alerts/alertmanager"
PD = "/api/v1/ops/alerts/pagerduty/enqueue"


def alert(status: str = "firing", fingerprint: str = "6b1a4e2c9d0f7a31", **labels: str) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "HighErrorRate", "severity": "critical", **labels},
        "annotations": {"summary": "Checkout errors above 5%", "description": "see dashboard"},
        "startsAt": "2030-01-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2030-01-01T10:05:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=errors",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"],
        "receiver": "mechanisms",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
        **overrides,
    }


@pytest.fixture
def checkout(client, org) -> None:
    created = client.post(
        "/api/v1/ops/services",
        json={"key": "checkout", "owner_team": "payments"},
        headers=org.header("ada"),
    )
    assert created.status_code == 201


def tickets(client, org) -> list[dict[str, Any]]:
    return client.get("/api/v1/ops/tickets", headers=org.header("ada")).json()


def timeline(client, org, ticket_id: int) -> list[dict[str, Any]]:
    return client.get(f"/api/v1/ops/tickets/{ticket_id}/timeline", headers=org.header("ada")).json()


# --- Alertmanager -------------------------------------------------------------------


def test_an_alert_opens_one_ticket_and_its_resolution_resolves_it(client, org, checkout):
    eve = org.header("eve")
    first = client.post(AM, json=payload(alert(service="checkout")), headers=eve)
    assert first.status_code == 200, first.text
    [outcome] = first.json()["outcomes"]
    assert outcome["action"] == "opened"
    [ticket] = tickets(client, org)
    assert ticket["severity"] == 1 and ticket["state"] == "open"
    assert ticket["title"] == "Checkout errors above 5%"
    assert ticket["links"]["alertmanager"]["fingerprint"] == "6b1a4e2c9d0f7a31"
    # Alertmanager notifies again while the alert fires: the same ticket, updated.
    again = client.post(AM, json=payload(alert(service="checkout")), headers=eve)
    assert again.json()["outcomes"][0] == {**outcome, "action": "updated"}
    assert len(tickets(client, org)) == 1
    resolved = client.post(AM, json=payload(alert("resolved", service="checkout")), headers=eve)
    assert resolved.json()["outcomes"][0]["action"] == "resolved"
    [ticket] = tickets(client, org)
    assert ticket["state"] == "resolved" and ticket["resolved_at"]
    kinds = [e["kind"] for e in timeline(client, org, ticket["id"])]
    assert kinds == ["created", "update", "resolved"]
    # Firing again after the resolution is a new problem: a new ticket.
    client.post(AM, json=payload(alert(service="checkout")), headers=eve)
    assert sorted(t["state"] for t in tickets(client, org)) == ["open", "resolved"]


def test_the_route_names_the_service_and_severity_words_map_to_sevs(client, org, checkout):
    eve = org.header("eve")
    body = payload(
        alert(fingerprint="a1", severity="warning"),
        alert(fingerprint="a2", severity="sev2"),
        alert(fingerprint="a3", severity="page-me-maybe"),
    )
    answer = client.post(f"{AM}?service=checkout&default_severity=4", json=body, headers=eve)
    assert answer.status_code == 200, answer.text
    by_key = {t["dedup_key"].rsplit(":", 1)[1]: t for t in tickets(client, org)}
    assert {k: t["severity"] for k, t in by_key.items()} == {"a1": 3, "a2": 2, "a3": 4}
    unknown_word = timeline(client, org, by_key["a3"]["id"])[0]["text"]
    assert "severity label 'page-me-maybe' is unknown: SEV4" in unknown_word


@pytest.mark.parametrize(
    "body, field",
    [
        (payload(alert(service="checkout"), version="3"), "version"),
        (payload(alert(service="checkout"), alerts=[]), "alerts"),
        (payload({**alert(service="checkout"), "status": "pending"}), "alerts.0.status"),
        (payload({**alert(service="checkout"), "labels": {"service": 7}}), "alerts.0.labels"),
        (payload(alert(service="checkout"), groupLabels=None), "groupLabels"),
    ],
)
def test_a_malformed_payload_is_refused_and_writes_nothing(client, org, checkout, body, field):
    answer = client.post(AM, json=body, headers=org.header("eve"))
    assert answer.status_code == 422
    assert any(d["field"].startswith(field) for d in answer.json()["error"]["details"])
    assert tickets(client, org) == []


def test_an_unknown_or_missing_service_refuses_the_whole_payload(client, org, checkout):
    eve = org.header("eve")
    body = payload(alert(fingerprint="ok", service="checkout"), alert(service="nope"))
    answer = client.post(AM, json=body, headers=eve)
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "alerts[1].labels.service: unknown service 'nope'"
    missing = client.post(AM, json=payload(alert()), headers=eve)
    assert missing.status_code == 422 and "?service=" in missing.json()["error"]["message"]
    assert tickets(client, org) == []


def test_only_engineers_of_the_service_team_may_send_alerts(client, org, checkout):
    for who in ("vic", "ada-viewer-scope"):
        answer = client.post(AM, json=payload(alert(service="checkout")), headers=org.header(who))
        assert answer.status_code == 403
    assert client.post(AM, json=payload(alert(service="checkout"))).status_code == 401
    assert tickets(client, org) == []


# --- PagerDuty Events API v2 --------------------------------------------------------


def new_key(client, org, name: str = "alertmanager") -> str:
    made = client.post(
        "/api/v1/ops/alerts/integration-keys",
        json={"service": "checkout", "name": name},
        headers=org.header("eve"),
    )
    assert made.status_code == 201, made.text
    return made.json()["routing_key"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: PagerDuty's client speaks only HTTPS."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def live(db, clock, certificate):
    cert, key = certificate
    app = create_app(db, clock=clock, settings=Settings(max_body_bytes=64_000))
    with serving(app, ssl_certfile=cert, ssl_keyfile=key) as url:
        yield url


def events_client(live: str, routing_key: str, certificate: tuple[str, str]):
    return pagerduty.EventsApiV2Client(
        routing_key,
        base_url=f"{live}/api/v1/ops/alerts/pagerduty",
        verify=ssl.create_default_context(cafile=certificate[0]),
    )


def test_pagerdutys_own_client_triggers_acknowledges_and_resolves(
    client, org, checkout, live, certificate
):
    routing_key = new_key(client, org)
    assert len(routing_key) == 32
    events = events_client(live, routing_key, certificate)
    runbook = {"href": "https://runbooks.example/disk", "text": "runbook"}
    dedup_key = events.trigger(
        "Disk full on db-1", "db-1.example", severity="error", links=[runbook]
    )
    assert dedup_key  # generated for a trigger that had none, and returned
    [ticket] = tickets(client, org)
    assert (ticket["title"], ticket["severity"], ticket["state"]) == (
        "Disk full on db-1",
        2,
        "open",
    )
    assert ticket["links"]["pagerduty"] == {
        "dedup_key": dedup_key,
        "client_url": None,
        "links": [runbook],
    }
    assert events.trigger("Disk full on db-1", "db-1.example", dedup_key=dedup_key) == dedup_key
    assert len(tickets(client, org)) == 1
    events.acknowledge(dedup_key)
    assert tickets(client, org)[0]["state"] == "acknowledged"
    assert tickets(client, org)[0]["assignee"] is None
    events.resolve(dedup_key)
    [ticket] = tickets(client, org)
    assert ticket["state"] == "resolved"
    events_in_timeline = timeline(client, org, ticket["id"])
    assert [e["kind"] for e in events_in_timeline] == [
        "created",
        "update",
        "acknowledged",
        "resolved",
    ]
    assert events_in_timeline[0]["actor"] == "integration:checkout/alertmanager"
    # Acknowledging or resolving what is not open is accepted and does nothing, as in PagerDuty.
    assert events.resolve(dedup_key) == dedup_key
    assert len(tickets(client, org)) == 1


def test_invalid_events_get_pagerdutys_400(client, org, checkout, live, certificate):
    routing_key = new_key(client, org)
    cases = [
        ({"routing_key": routing_key, "event_action": "trigger"}, "'payload' is missing"),
        ({"routing_key": routing_key, "event_action": "resolve"}, "'dedup_key' is required"),
        (
            {
                "routing_key": routing_key,
                "event_action": "trigger",
                "payload": {"summary": "x", "source": "y", "severity": "fatal"},
            },
            "'payload.severity'",
        ),
        ({"routing_key": "0" * 32, "event_action": "resolve", "dedup_key": "k"}, "routing_key"),
        ({"routing_key": routing_key, "event_action": "snooze", "dedup_key": "k"}, "event_action"),
    ]
    for body, error in cases:
        answer = httpx.post(
            live + PD, json=body, verify=ssl.create_default_context(cafile=certificate[0])
        )
        assert answer.status_code == 400, body
        assert answer.json()["status"] == "invalid event"
        assert any(error in e for e in answer.json()["errors"]), answer.json()
    not_json = httpx.post(
        live + PD,
        content=b"{nope",
        headers={"content-type": "application/json"},
        verify=ssl.create_default_context(cafile=certificate[0]),
    )
    assert not_json.status_code == 400 and not_json.json()["status"] == "invalid event"
    with pytest.raises(pagerduty.HttpError):
        events_client(live, "f" * 32, certificate).trigger("x", "y")
    assert tickets(client, org) == []


def test_each_routing_key_is_rate_limited_per_minute(client, org, checkout, clock):
    routing_key = new_key(client, org)
    other_key = new_key(client, org, "other")
    event = {"routing_key": routing_key, "event_action": "resolve", "dedup_key": "none-open"}
    for _ in range(120):
        assert client.post(PD, json=event).status_code == 202
    limited = client.post(PD, json=event)
    assert limited.status_code == 429
    assert limited.json()["status"] == "throttle exceeded"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Another key of the same service has its own budget.
    assert client.post(PD, json={**event, "routing_key": other_key}).status_code == 202
    clock.advance(timedelta(seconds=61))
    assert client.post(PD, json=event).status_code == 202


def test_keys_are_listed_without_their_secret_and_rotation_retires_the_old_one(
    client, org, checkout
):
    old = new_key(client, org)
    listed = client.get("/api/v1/ops/alerts/integration-keys", headers=org.header("vic")).json()
    assert [(k["service"], k["name"], k["hint"]) for k in listed] == [
        ("checkout", "alertmanager", old[:6])
    ]
    assert "routing_key" not in listed[0]
    rotated = client.post(
        "/api/v1/ops/alerts/integration-keys/checkout/alertmanager/rotate",
        headers=org.header("eve"),
    )
    assert rotated.status_code == 200
    new = rotated.json()["routing_key"]
    trigger = {
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "info"},
    }
    assert client.post(PD, json={**trigger, "routing_key": old}).status_code == 400
    answer = client.post(PD, json={**trigger, "routing_key": new})
    assert answer.status_code == 202 and answer.json()["message"] == "Event processed"
    assert tickets(client, org)[0]["severity"] == 4
    for who in ("vic", "ada-viewer-scope"):
        assert (
            client.post(
                "/api/v1/ops/alerts/integration-keys",
                json={"service": "checkout", "name": "x"},
                headers=org.header(who),
            ).status_code
            == 403
        )
