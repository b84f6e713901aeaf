"""Issue #14, items 5, 10 and 11: writing metrics is a permission, recurrences are bounded,
and the server fetches only where it should. Each test performs the attack."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from mechanisms.core import accounts, events, webhooks
from mechanisms.core.config import get_settings
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import AuditRecord, Delivery, Event
from mechanisms.core.worker import Worker
from mechanisms.ops import EvaluateAlarms, alarms, prometheus
from mechanisms.ops.tables import Silence

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


# --- item 11: the server fetches only where it should ------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1:9090",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:9090",
    "http://[::ffff:127.0.0.1]:9090",
    "http://10.1.2.3:9090",
    "http://localhost:9090",  # a name that resolves to loopback
]
SECRET = "aws-secret-access-key-EXAMPLE"


class Internal:
    """An internal service on loopback that answers every request with a secret."""

    def __init__(self) -> None:
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def _answer(handler) -> None:  # noqa: N805 - the handler, not the test object
                self.requests += 1
                handler.rfile.read(int(handler.headers.get("content-length", "0")))
                body = json.dumps(
                    {"status": "error", "errorType": "internal", "error": SECRET}
                ).encode()
                handler.send_response(500)
                handler.send_header("content-type", "application/json")
                handler.send_header("content-length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[Internal]:
    server = Internal()
    yield server
    server.stop()


@pytest.fixture
def checkout(run, org) -> None:
    run(alarms.create_service, "checkout", "Checkout", "payments")


def _prometheus_alarm(url: str) -> dict:
    return {
        "name": "checkout-errors",
        "service": "checkout",
        "url": url,
        "query": "sum(rate(errors_total[1m]))",
        "definition": {**LATENCY, "statistic": "sum", "treat_missing_data": "breaching"},
    }


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_destinations_are_refused_when_they_are_given(client, org, checkout, url):
    admin = org.header("ada")
    alarm = client.post("/api/v1/ops/alarms/prometheus", json=_prometheus_alarm(url), headers=admin)
    assert alarm.status_code == 422, alarm.text
    assert alarm.json()["error"]["code"] == "destination_refused"
    hook = client.post(
        "/api/v1/webhooks", json={"url": url + "/hook", "event_types": ["*"]}, headers=admin
    )
    assert hook.status_code == 422, hook.text
    assert hook.json()["error"]["code"] == "destination_refused"


def _create_prometheus_alarm(run, url: str) -> None:
    given = _prometheus_alarm(url)
    run(
        prometheus.create_alarm,
        given.pop("name"),
        given.pop("service"),
        **given,
        severity=2,
    )


def _tick(db, clock, *jobs) -> None:
    worker = Worker(db, clock=clock, jobs=list(jobs) or None)
    try:
        worker.run_until_idle()
    finally:
        worker.close()


def test_a_prometheus_source_allowed_once_is_refused_at_fetch_and_nothing_is_quoted(
    db, run, clock, checkout, internal, monkeypatch
):
    # Created while an administrator allowed loopback; the allowance is withdrawn since.
    monkeypatch.setenv("MECH_OUTBOUND_ALLOW", "127.0.0.1")
    get_settings.cache_clear()
    _create_prometheus_alarm(run, internal.url)
    monkeypatch.delenv("MECH_OUTBOUND_ALLOW")
    get_settings.cache_clear()
    _tick(db, clock, prometheus.EvaluatePrometheusAlarms())
    reason = run(alarms.get_alarm, "checkout-errors").state_reason
    assert internal.requests == 0
    assert "refused" in reason and SECRET not in reason


def test_an_allowed_prometheus_is_read_but_its_error_text_is_not_quoted(
    db, run, clock, checkout, internal, local_receivers_allowed
):
    _create_prometheus_alarm(run, internal.url)
    _tick(db, clock, prometheus.EvaluatePrometheusAlarms())
    alarm = run(alarms.get_alarm, "checkout-errors")
    assert internal.requests == 1, "the allowance lets a local Prometheus be read"
    assert "the query failed (internal)" in alarm.state_reason
    assert SECRET not in alarm.state_reason
    assert all(SECRET not in t.reason for t in run(alarms.history, "checkout-errors"))


def _deliveries(db) -> list[Delivery]:
    with db.transaction(write=False) as session:
        return list(session.execute(select(Delivery)).scalars())


def _emit(db, clock) -> None:
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        events.emit(ctx, "test.ping", "thing", "1", {"n": 1})


def test_a_webhook_allowed_once_is_refused_at_delivery(db, run, clock, internal, monkeypatch):
    monkeypatch.setenv("MECH_OUTBOUND_ALLOW", "127.0.0.1")
    get_settings.cache_clear()
    run(webhooks.create, internal.url + "/hook", ["*"])
    monkeypatch.delenv("MECH_OUTBOUND_ALLOW")
    get_settings.cache_clear()
    _emit(db, clock)
    _tick(db, clock)
    [delivery] = _deliveries(db)
    assert internal.requests == 0
    assert delivery.status != "delivered" and delivery.last_error.startswith("refused")


def test_an_allowed_webhook_receiver_gets_its_delivery_and_its_answer_is_not_kept(
    db, run, clock, internal, local_receivers_allowed
):
    run(webhooks.create, internal.url + "/hook", ["*"])
    _emit(db, clock)
    _tick(db, clock)
    [delivery] = _deliveries(db)
    assert internal.requests == 1
    assert delivery.last_error == "HTTP 500" and delivery.last_status_code == 500


# --- item 10: recurrences are bounded ----------------------------------------------


def _silence(name: str, rrule: str, start: str = "2026-01-05T08:00:00") -> dict:
    end = start[:11] + "10:00:00"
    return {"name": name, "start": start, "end": end, "time_zone": "UTC", "rrule": rrule}


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;INTERVAL=1",
        "freq=secondly;interval=1",
        "FREQ=HOURLY",  # 8,760 a year: more than a silence ever needs
        "FREQ=DAILY;COUNT=100000000",
    ],
)
def test_a_silence_that_recurs_without_bounds_is_refused(client, org, rrule):
    sent = client.post(
        "/api/v1/ops/silences", json=_silence("flood", rrule), headers=org.header("ada")
    )
    assert sent.status_code == 422, sent.text
    assert sent.json()["error"]["details"]["field"] == "rrule"


def test_a_recurring_silence_whose_window_lasts_years_is_refused(client, org):
    endless = {**_silence("endless", "FREQ=YEARLY"), "end": "2029-01-05T10:00:00"}
    sent = client.post("/api/v1/ops/silences", json=endless, headers=org.header("ada"))
    assert sent.status_code == 422 and "at most 366 days" in sent.text


def test_an_old_silence_costs_one_window_and_writes_go_on_during_the_tick(
    db, client, run, clock, org, watched
):
    admin = org.header("ada")
    # Weekly on Mondays 08:00-10:00 since 2001: a quarter of a century of occurrences.
    old = _silence("monday-maintenance", "FREQ=WEEKLY;BYDAY=MO", start="2001-01-01T08:00:00")
    assert client.post("/api/v1/ops/silences", json=old, headers=admin).status_code == 201
    # A silence stored before these bounds (written past the API) is ignored, not walked.
    with db.transaction() as session:
        session.add(
            Silence(
                name="legacy-flood",
                definition=_silence("legacy-flood", "FREQ=SECONDLY", "2001-01-01T00:00:00"),
                created_by="old version",
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    client.post("/api/v1/ops/metrics", json=_spike(clock, "checkout"), headers=admin)
    clock.advance(minutes=1)
    worker = Worker(db, clock=clock, jobs=[EvaluateAlarms()])
    timing: dict[str, float] = {}

    def tick() -> None:
        began = time.monotonic()
        worker.run_until_idle()
        timing["tick"] = time.monotonic() - began

    ticking = threading.Thread(target=tick)
    ticking.start()
    other = {"key": "search-api", "owner_team": "payments"}
    written = client.post("/api/v1/ops/services", json=other, headers=admin)
    ticking.join(timeout=60)
    worker.close()
    assert written.status_code == 201, written.text
    assert not ticking.is_alive() and timing["tick"] < 5
    moved = run(alarms.history, "checkout-slow")[0]
    assert moved.to_state == "ALARM"
    shown = client.get("/api/v1/ops/silences/monday-maintenance", headers=admin).json()
    assert shown["active"] is True and shown["window_end"].startswith("2026-01-05T10:00")
    with db.transaction(write=False) as session:
        silenced = session.execute(
            select(Event.payload).where(Event.type == "alarms.state_changed")
        ).scalars()
        assert [p.get("silence") for p in silenced] == ["monday-maintenance"]


# --- item 5 (continued): per-service ingest keys -----------------------------------


def _key(client, headers, service: str, name: str = "collector"):
    return client.post(
        f"/api/v1/ops/services/{service}/ingest-keys", json={"name": name}, headers=headers
    )


def test_an_ingest_key_writes_for_its_own_service_and_no_other(client, run, clock, org, watched):
    made = _key(client, org.header("leo"), "checkout")
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    keyed = {"X-Mech-Ingest-Key": secret}
    # The attack: checkout's key used for search, alone or hidden in a batch, or unlabelled.
    for body in (
        _spike(clock, "search"),
        _spike(clock, "checkout", "search"),
        {"samples": [{"name": "api_latency_ms", "value": 9000.0}]},
    ):
        refused = client.post("/api/v1/ops/metrics", json=body, headers=keyed)
        assert refused.status_code == 403, refused.text
    text = 'api_latency_ms{service="search"} 9000\n'
    prom = client.post(
        "/api/v1/ops/metrics/prometheus",
        content=text,
        headers={**keyed, "content-type": "text/plain"},
    )
    assert prom.status_code == 403
    assert _alarm_after_a_tick(run, clock) != "ALARM"
    # Its own service: accepted, and the alarm moves.
    sent = client.post("/api/v1/ops/metrics", json=_spike(clock, "checkout"), headers=keyed)
    assert sent.status_code == 202, sent.text
    assert _alarm_after_a_tick(run, clock) == "ALARM"


def test_only_leaders_of_the_owning_team_manage_ingest_keys_and_rotation_retires_the_old(
    client, run, clock, org, outsiders, watched
):
    for who in (org.header("eve"), outsiders["sam"], org.header("vic")):
        assert _key(client, who, "checkout").status_code == 403
    # Another organisation does not see acme's service at all (issue #14, item 7).
    assert _key(client, outsiders["gus"], "checkout").status_code == 404
    leader = org.header("leo")
    old = _key(client, leader, "checkout").json()["key"]
    listed = client.get("/api/v1/ops/services/checkout/ingest-keys", headers=leader).json()
    assert [k["name"] for k in listed] == ["collector"] and old not in str(listed)
    rotated = client.post(
        "/api/v1/ops/services/checkout/ingest-keys/collector/rotate", headers=leader
    )
    new = rotated.json()["key"]
    one = _spike(clock, "checkout")
    stale = client.post("/api/v1/ops/metrics", json=one, headers={"X-Mech-Ingest-Key": old})
    assert stale.status_code == 401
    assert (
        client.post("/api/v1/ops/metrics", json=one, headers={"X-Mech-Ingest-Key": new}).status_code
        == 202
    )
    gone = client.delete("/api/v1/ops/services/checkout/ingest-keys/collector", headers=leader)
    assert gone.status_code == 204
    revoked = client.post("/api/v1/ops/metrics", json=one, headers={"X-Mech-Ingest-Key": new})
    assert revoked.status_code == 401
    actions = [r.action for r in run(audit_records)]
    assert [a for a in actions if a.startswith("ops.ingest_key")] == [
        "ops.ingest_key_created",
        "ops.ingest_key_rotated",
        "ops.ingest_key_revoked",
    ]
    assert all(old not in str(r.details) and new not in str(r.details) for r in run(audit_records))


def audit_records(ctx: Ctx) -> list:
    return list(ctx.session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars())


def test_samples_without_the_services_label_do_not_move_its_alarm(
    client, run, clock, org, outsiders, watched
):
    # An alarm created without naming its service in its match still reads only its own.
    run(
        alarms.create_alarm, "checkout-any", "checkout", metric="api_latency_ms", definition=LATENCY
    )
    assert run(alarms.get_alarm, "checkout-any").match == {"service": "checkout"}
    # Sam may write samples that name no registered service; no alarm of checkout reads them.
    unlabelled = {"samples": [{"name": "api_latency_ms", "labels": {}, "value": 9000.0}]}
    sent = client.post("/api/v1/ops/metrics", json=unlabelled, headers=outsiders["sam"])
    assert sent.status_code == 202
    assert _alarm_after_a_tick(run, clock) != "ALARM"
    assert run(alarms.get_alarm, "checkout-any").state != "ALARM"
    # Nor can an alarm of checkout be pointed at another service's samples.
    alarm = {
        "name": "checkout-reads-search",
        "service": "checkout",
        "metric": "api_latency_ms",
        "match": {"service": "search"},
        "definition": LATENCY,
    }
    refused = client.post("/api/v1/ops/alarms", json=alarm, headers=org.header("eve"))
    assert refused.status_code == 422 and "match.service" in refused.text
