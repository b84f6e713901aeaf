"""Alarms whose datapoints come from a real Prometheus (Debian's ``prometheus``), evaluated
by the worker with the same M-of-N and missing-data rules as built-in alarms; a server
that is down, an error answer or values that are not numbers never read as OK."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mechanisms.core.errors import Forbidden, InvalidInput
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, prometheus, tickets
from tests.support.prometheus import prometheus as running_prometheus
from tests.support.server import free_port

# Prometheus listens on this machine, which the server refuses unless allowed.
pytestmark = pytest.mark.usefixtures("local_receivers_allowed")

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [RULES]
"""

ABOVE_10 = {
    "statistic": "max",
    "comparison": "GreaterThanThreshold",
    "threshold": 10,
    "period_seconds": 60,
    "evaluation_periods": 3,
    "datapoints_to_alarm": 3,
}


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory) -> Iterator[str]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), CONFIG) as url:
        yield url


@pytest.fixture
def service(org, run, clock):
    # Prometheus answers about any time, but stay near the real one.
    clock.set(datetime.now(UTC).replace(microsecond=0))
    run(alarms.create_service, "checkout", "Checkout", "payments")


@pytest.fixture
def worker(db, clock) -> Iterator[Worker]:
    w = Worker(db, clock=clock, jobs=[prometheus.EvaluatePrometheusAlarms()])
    yield w
    w.close()


def alarm(run, name: str, url: str, query: str, **definition) -> None:
    run(
        prometheus.create_alarm,
        name,
        "checkout",
        url=url,
        query=query,
        definition={**ABOVE_10, **definition},
        severity=2,
    )


def state(run, name: str) -> tuple[str, str]:
    found = run(alarms.get_alarm, name)
    return found.state, found.state_reason


def test_a_query_above_the_threshold_fires_and_one_below_is_ok(
    run, worker, service, prometheus_url
):
    alarm(run, "hot", prometheus_url, "vector(42)")
    alarm(run, "cool", prometheus_url, "vector(3)")
    # Two series: the statistic combines them at each instant (sum 12 > 10, avg 6 is not).
    two = 'label_replace(vector(5), "pod", "a", "", "") or label_replace(vector(7), "pod", "b", "", "")'
    alarm(run, "two-summed", prometheus_url, two, statistic="sum")
    alarm(run, "two-averaged", prometheus_url, two, statistic="avg")
    assert worker.tick() >= 4
    assert state(run, "hot")[0] == "ALARM"
    assert state(run, "cool")[0] == "OK"
    assert state(run, "two-summed")[0] == "ALARM"
    assert state(run, "two-averaged")[0] == "OK"
    [transition] = run(alarms.history, "hot")
    assert [p["value"] for p in transition.datapoints] == [42.0, 42.0, 42.0]
    assert transition.reason.startswith("Threshold Crossed: 3 out of the last 3 datapoints")
    # Evaluated once per interval, not again at once.
    assert worker.tick() == 0


@pytest.mark.parametrize(
    "query, problem",
    [
        ("no_such_metric_total", "the query returned no series"),
        ("vector(0/0)", "not finite numbers"),
        ("sum(", "bad_data"),
    ],
)
def test_no_data_an_error_or_nan_is_insufficient_data_with_the_reason(
    run, worker, service, prometheus_url, query, problem
):
    alarm(run, "watched", prometheus_url, query)
    run(alarms.set_state, "watched", "OK", "known good")
    worker.tick()
    now, reason = state(run, "watched")
    assert now == "INSUFFICIENT_DATA"
    assert problem in reason


def test_an_unreachable_prometheus_is_never_silently_ok(run, worker, service):
    down = f"http://127.0.0.1:{free_port()}"
    alarm(run, "missing", down, "vector(1)")
    alarm(run, "breaching", down, "vector(1)", treat_missing_data="breaching")
    alarm(run, "ignoring", down, "vector(1)", treat_missing_data="ignore")
    for name in ("missing", "breaching", "ignoring"):
        run(alarms.set_state, name, "OK", "known good")
    worker.tick()
    missing, breaching, ignoring = (state(run, n) for n in ("missing", "breaching", "ignoring"))
    assert missing[0] == "INSUFFICIENT_DATA"
    assert breaching[0] == "ALARM"
    # "ignore" keeps the state, as the alarm's missing-data rule says, and says why.
    assert ignoring[0] == "OK"
    for _state, reason in (missing, breaching, ignoring):
        assert f"Prometheus at {down} is unreachable" in reason
    [transition] = run(alarms.history, "missing")[:1]
    assert transition.from_state == "OK" and "unreachable" in transition.reason


def test_a_prometheus_alarm_is_checked_when_created(run, org, service, prometheus_url):
    bad = [
        ({"url": "ftp://prom:21"}, "url"),
        ({"url": "http://prom:9090/?x=1"}, "url"),
        ({"query": " "}, "query"),
        ({"definition": {**ABOVE_10, "statistic": "p99"}}, "definition.statistic"),
        ({"definition": {**ABOVE_10, "period_seconds": 30}}, "definition.period_seconds"),
    ]
    for change, field in bad:
        arguments = {"url": prometheus_url, "query": "up", "definition": ABOVE_10, **change}
        with pytest.raises(InvalidInput) as refused:
            run(prometheus.create_alarm, "x", "checkout", **arguments)
        assert refused.value.details == {"field": field}


def test_prometheus_alarms_over_http(client, org, service, prometheus_url):
    body = {
        "name": "error-rate",
        "service": "checkout",
        "url": prometheus_url + "/",
        "query": 'sum(rate(http_requests_total{code=~"5.."}[1m]))',
        "definition": ABOVE_10,
        "severity": 2,
    }
    viewer = client.post("/api/v1/ops/alarms/prometheus", json=body, headers=org.header("vic"))
    assert viewer.status_code == 403
    created = client.post("/api/v1/ops/alarms/prometheus", json=body, headers=org.header("eve"))
    assert created.status_code == 201, created.text
    assert created.json()["url"] == prometheus_url
    shown = client.get("/api/v1/ops/alarms/error-rate/prometheus", headers=org.header("vic"))
    assert shown.json()["query"] == body["query"]
    listed = client.get("/api/v1/ops/alarms", headers=org.header("vic")).json()
    assert [(a["name"], a["kind"], a["state"]) for a in listed] == [
        ("error-rate", "prometheus", "INSUFFICIENT_DATA")
    ]


def test_viewers_cannot_create_prometheus_alarms(run, org, service, prometheus_url, db, clock):
    from mechanisms.core import accounts

    with db.transaction(write=False) as session:
        vic = accounts.check_token(session, org.tokens["vic"], clock.now()).principal
    with pytest.raises(Forbidden):
        run(
            prometheus.create_alarm,
            "x",
            "checkout",
            url=prometheus_url,
            query="up",
            definition=ABOVE_10,
            as_=vic,
        )


def test_a_hanging_prometheus_holds_no_database_lock_while_the_worker_waits(run, worker, service):
    # A server that accepts the connection and never answers: the worker waits for its
    # read timeout, and meanwhile the rest of the system must still be able to write.
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen()
        hanging.settimeout(10)
        url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        alarm(run, "stuck", url, "vector(1)")
        ticking = threading.Thread(target=worker.tick)
        ticking.start()
        connection, _ = hanging.accept()  # the worker is now inside its HTTP request
        run(alarms.create_service, "search", "Search", "payments")
        # The write is done and the worker is still waiting for its answer: the write did
        # not queue behind the evaluation (which ends only at the read timeout, below).
        worker_still_waiting = ticking.is_alive()
        ticking.join(timeout=30)
        connection.close()
    assert worker_still_waiting, "the write waited for the evaluation to give up"
    assert [s.key for s in run(alarms.list_services)].count("search") == 1
    now, reason = state(run, "stuck")
    assert now == "INSUFFICIENT_DATA" and "ReadTimeout" in reason


def test_a_prometheus_alarm_cuts_a_ticket_and_feeds_composites(
    db, run, clock, service, prometheus_url
):
    alarm(run, "hot", prometheus_url, "vector(42)")
    run(alarms.create_alarm, "checkout-down", "checkout", rule='ALARM("hot")', severity=1)
    everything = Worker(db, clock=clock)  # every registered job: alarms, events, tickets
    try:
        everything.run_until_idle(max_ticks=20)
    finally:
        everything.close()
    assert state(run, "checkout-down")[0] == "ALARM"
    cut = {t.alarm: t for t in run(tickets.list_tickets)}
    assert cut["hot"].severity == 2 and cut["hot"].state == "open"
    assert cut["checkout-down"].severity == 1
