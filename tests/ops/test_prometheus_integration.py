"""End to end with the real tools from Debian's packages (``prometheus``,
``prometheus-alertmanager``): Prometheus scrapes a small service, a rule fires,
Alertmanager delivers to both our Alertmanager receiver and our PagerDuty-compatible
enqueue, each cuts a ticket; the service recovers, the alert resolves, and both tickets
record the resolution."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from mechanisms.app import create_app
from mechanisms.core.config import Settings
from mechanisms.core.worker import Worker
from tests.conftest import LOCAL_RECEIVERS
from tests.support.prometheus import alertmanager, prometheus
from tests.support.server import serving

# Prometheus listens on this machine, which the server refuses unless allowed.
pytestmark = pytest.mark.usefixtures("local_receivers_allowed")

RULES = """
groups:
  - name: checkout
    interval: 1s
    rules:
      - alert: CheckoutErrors
        expr: checkout_error_ratio > 0.05
        for: 0s
        labels: {severity: critical, service: checkout}
        annotations: {summary: "Checkout errors above 5%"}
"""

PROMETHEUS = """
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [RULES]
alerting:
  alertmanagers: [{static_configs: [{targets: ["ALERTMANAGER"]}]}]
scrape_configs:
  - job_name: checkout
    static_configs: [{targets: ["SERVICE"]}]
"""

ALERTMANAGER = """
global: {resolve_timeout: 5s}
route:
  receiver: mechanisms
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - {receiver: mechanisms, continue: true}
    - {receiver: pagerduty}
receivers:
  - name: mechanisms
    webhook_configs:
      - url: APP/api/v1/ops/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization: {type: Bearer, credentials: TOKEN}
  - name: pagerduty
    pagerduty_configs:
      - url: APP/api/v1/ops/alerts/pagerduty/enqueue
        routing_key: ROUTING_KEY
        severity: '{{ .CommonLabels.severity }}'
        send_resolved: true
"""


class ErrorRatio:
    """A tiny service that exposes one gauge for Prometheus to scrape."""

    def __init__(self) -> None:
        self.value = 0.0
        ratio = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = f"checkout_error_ratio {ratio.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def error_ratio() -> Iterator[ErrorRatio]:
    service = ErrorRatio()
    yield service
    service.close()


def wait_for(what: str, check: Callable[[], Any], logs: list[Any], timeout: float = 25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    tails = "\n".join(p.read_text()[-1500:] for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def both_paths(
    tickets: Callable[[], dict[str, dict[str, Any]]], state: str
) -> Callable[[], dict[str, dict[str, Any]] | None]:
    """The tickets by path once there is one through each path, both in ``state``."""

    def check() -> dict[str, dict[str, Any]] | None:
        found = tickets()
        ready = found.keys() == {"alertmanager", "pagerduty"} and all(
            t["state"] == state for t in found.values()
        )
        return found if ready else None

    return check


def on_call_eve_then_leo(api: httpx.Client) -> None:
    """payments pages eve (on call on a one-person daily rotation), then leo after 5 min."""
    schedule = {
        "name": "payments-primary",
        "team": "payments",
        "time_zone": "UTC",
        "layers": [
            {
                "participants": ["eve"],
                "rotation": {"type": "daily", "handoff_time": "09:00"},
                "start": "2026-01-01T09:00:00Z",
            }
        ],
    }
    assert api.post("/api/v1/ops/oncall/schedules", json=schedule).status_code == 201
    policy = {
        "name": "payments-default",
        "team": "payments",
        "levels": [
            {"targets": [{"kind": "schedule", "name": "payments-primary"}], "timeout_minutes": 5},
            {"targets": [{"kind": "user", "name": "leo"}], "timeout_minutes": 5},
        ],
        "default": True,
    }
    assert api.post("/api/v1/ops/oncall/policies", json=policy).status_code == 201


def pages_after_a_worker_tick(api: httpx.Client, db: Any, clock: Any) -> set[tuple[int, str]]:
    """Run the worker until idle (it delivers ticket events, opens pages and notifies level
    0); the (ticket, person notified) pairs of the triggered pages."""
    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    paged = set()
    for page in api.get("/api/v1/ops/oncall/pages", params={"state": "triggered"}).json():
        detail = api.get(f"/api/v1/ops/oncall/pages/{page['id']}").json()
        paged |= {(page["ticket_id"], n["person"]) for n in detail["notifications"]}
    return paged


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    # The tools are under test here, not the database: one backend keeps it short.
    return request.param


def test_prometheus_and_alertmanager_cut_and_resolve_tickets(db, clock, org, tmp_path, error_ratio):
    started = time.monotonic()
    app = create_app(
        db, clock=clock, settings=Settings(max_body_bytes=256_000, outbound_allow=LOCAL_RECEIVERS)
    )
    admin = org.header("ada")
    with serving(app) as url:
        api = httpx.Client(base_url=url, headers=admin, timeout=5)
        api.post("/api/v1/ops/services", json={"key": "checkout", "owner_team": "payments"})
        on_call_eve_then_leo(api)
        routing_key = api.post(
            "/api/v1/ops/alerts/integration-keys", json={"service": "checkout", "name": "am"}
        ).json()["routing_key"]

        def tickets() -> dict[str, dict[str, Any]]:
            found = api.get("/api/v1/ops/tickets").json()
            return {t["dedup_key"].split(":", 1)[0]: t for t in found}

        am_config = (
            ALERTMANAGER.replace("APP", url)
            .replace("TOKEN", org.tokens["robot"])  # a bot engineer of the payments team
            .replace("ROUTING_KEY", routing_key)
        )
        logs = [tmp_path / "am" / "alertmanager.log", tmp_path / "prom" / "prometheus.log"]
        with alertmanager(tmp_path / "am", am_config) as am_url:
            config = PROMETHEUS.replace("ALERTMANAGER", am_url.removeprefix("http://")).replace(
                "SERVICE", error_ratio.address
            )
            with prometheus(tmp_path / "prom", config, RULES):
                error_ratio.value = 0.2
                cut = wait_for("a ticket through each path", both_paths(tickets, "open"), logs)
                via_webhook, via_events = cut["alertmanager"], cut["pagerduty"]
                assert via_webhook["title"] == "Checkout errors above 5%"
                assert via_webhook["severity"] == 1 and via_webhook["state"] == "open"
                assert via_events["severity"] == 1 and via_events["state"] == "open"
                assert "CheckoutErrors" in via_events["title"]
                paged = pages_after_a_worker_tick(api, db, clock)
                assert paged == {
                    (via_webhook["id"], "eve"),
                    (via_events["id"], "eve"),
                }, "each SEV1 ticket pages whoever is on call for payments now"
                error_ratio.value = 0.0
                resolved = wait_for("both tickets resolved", both_paths(tickets, "resolved"), logs)
        resolutions = {}
        for path, ticket in resolved.items():
            events = api.get(f"/api/v1/ops/tickets/{ticket['id']}/timeline").json()
            assert events[0]["kind"] == "created" and events[-1]["kind"] == "resolved"
            resolutions[path] = events[-1]["text"]
        assert resolutions["alertmanager"].startswith("Alertmanager: CheckoutErrors resolved at")
        assert resolutions["pagerduty"] == "Resolved through the Events API"
    # Reported, not asserted: a slow machine makes the run slower, not wrong.
    print(f"end to end in {time.monotonic() - started:.1f}s")
