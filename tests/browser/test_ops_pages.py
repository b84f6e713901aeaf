"""The ops pages: the alarms list, an alarm's graph (threshold line, state bands), a
composite alarm, the metrics explorer, tickets acted on through their page, what a
viewer may not do, and bad query parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.ops import alarms, tickets
from tests.browser.conftest import PHONE, LiveServer, wait_until
from tests.browser.test_flags_support import no_sideways_scroll

pytestmark = pytest.mark.browser

ALARM = "checkout-slow"
THRESHOLD = 300
# Minutes ago: the alarm went OK (its first evaluation with data), then into ALARM,
# then OK again.
OK_AT, ALARM_AT, RECOVERED_AT = 150, 60, 30
# The minutes (ago) whose latency is above the threshold: three of them before the alarm
# fires, and at most two in the last five periods when it recovers, whatever the second
# the test starts at.
SLOW_MINUTES = range(RECOVERED_AT + 4, ALARM_AT + 4)


def _at(live: LiveServer, when: datetime, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with live.db.transaction() as session:
        return fn(Ctx(session, system_principal("test"), when), *args, **kwargs)


def seed_checkout(live: LiveServer) -> datetime:
    """The checkout service with three hours of latency, an alarm created three hours ago
    that went OK → ALARM → OK, and a composite alarm over it. Returns now."""
    now = datetime.now(UTC)
    earlier = now - timedelta(hours=3)
    _at(live, earlier, alarms.create_service, "checkout", "Checkout", "payments")
    _at(
        live,
        earlier,
        alarms.create_alarm,
        ALARM,
        "checkout",
        metric="api_latency_ms",
        match={"service": "checkout"},
        definition={
            "statistic": "p99",
            "comparison": "GreaterThanThreshold",
            "threshold": THRESHOLD,
            "period_seconds": 60,
            "evaluation_periods": 5,
            "datapoints_to_alarm": 3,
        },
        severity=2,
    )
    _at(live, earlier, alarms.create_alarm, "checkout-down", "checkout", rule=f'ALARM("{ALARM}")')
    samples = [
        {
            "name": "api_latency_ms",
            "labels": {"service": "checkout"},
            "value": (450 if minute in SLOW_MINUTES else 120) + minute % 7,
            "timestamp": (now - timedelta(minutes=minute, seconds=30)).timestamp(),
        }
        for minute in range(180)
    ]
    _at(live, now, alarms.ingest_json, {"samples": samples})
    # The worker's evaluation, run at the moments the alarm changed state.
    for minutes in (OK_AT, ALARM_AT, RECOVERED_AT):
        assert _at(live, now - timedelta(minutes=minutes), alarms.evaluate_due) >= 1
    return now


def seed_ticket(live: LiveServer) -> int:
    now = datetime.now(UTC)
    _at(live, now, alarms.create_service, "search", "Search", "payments")
    ticket = _at(live, now, tickets.create, "search", "Search results are empty", 2, "seen in eu")
    return ticket.id


def _band(chart: Any, state: str) -> tuple[float, float]:
    rect = chart.locator(f"rect.band[data-state='{state}']").first
    x, width = float(rect.get_attribute("x")), float(rect.get_attribute("width"))
    return x, x + width


def _dots(chart: Any) -> list[tuple[float, float]]:
    """(y, value) of every datapoint, read from its path and tooltip."""
    out = []
    for d, tip in chart.locator("path.dot").evaluate_all(
        "els => els.map(e => [e.getAttribute('d'), e.textContent])"
    ):
        y = float(d.split()[1])
        value = float(tip.rsplit("·", 1)[1].replace(",", ""))
        out.append((y, value))
    return out


def test_the_alarm_graph_shows_threshold_and_the_time_in_alarm(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed_checkout(live)
    page = signed_in("vic", path="/ops/alarms")
    row = page.locator(f"tr[data-alarm='{ALARM}']")
    assert row.get_by_test_id("state").inner_text() == "OK"
    assert "p99 of api_latency_ms" in row.inner_text()
    assert "SEV2" in row.inner_text()

    row.get_by_role("link", name=ALARM).click()
    page.wait_for_url(f"**/ops/alarms/{ALARM}")
    page.screenshot(path=str(shots_dir / "ops-alarm.png"), full_page=True)
    assert page.get_by_test_id("definition").inner_text() == (
        'p99 of api_latency_ms{service="checkout"} > 300 for 3 of 5 periods of 1 min; '
        "missing data: missing"
    )
    chart = page.get_by_test_id("alarm-chart")
    assert chart.locator("svg").is_visible()
    threshold = chart.get_by_test_id("rule-threshold")
    assert threshold.count() == 1
    threshold_y = float(threshold.get_attribute("data-y"))

    # 6 hours across 1000 units: the ALARM band runs from 60 to 30 minutes ago.
    start, end = _band(chart, "ALARM")
    assert start == pytest.approx(1000 * (360 - ALARM_AT) / 360, abs=2)
    assert end == pytest.approx(1000 * (360 - RECOVERED_AT) / 360, abs=2)
    assert chart.locator("rect.band[data-state='OK']").count() == 2
    assert chart.locator("rect.band[data-state='INSUFFICIENT_DATA']").count() == 1

    # Points above the threshold are drawn above its line (smaller y), the others below.
    dots = _dots(chart)
    assert len(dots) >= 170
    assert all((y < threshold_y) == (value > THRESHOLD) for y, value in dots)

    history = page.get_by_test_id("transitions").locator("tbody tr")
    assert [history.nth(i).get_attribute("data-to") for i in range(3)] == ["OK", "ALARM", "OK"]
    # The transition into ALARM lists the datapoints that decided it: 3 or more of 5 above.
    deciding = history.nth(1).locator(".datapoints li")
    assert deciding.count() == 5
    assert history.nth(1).locator(".datapoints li.breaching").count() >= 3
    assert "Threshold Crossed" in history.nth(1).inner_text()

    # One hour: the alarm band starts at the left edge and ends halfway.
    page.get_by_role("navigation", name="Range").get_by_role("link", name="1h").click()
    page.wait_for_url("**range=1h")
    start, end = _band(page.get_by_test_id("alarm-chart"), "ALARM")
    assert start == pytest.approx(0, abs=2)
    assert end == pytest.approx(500, abs=2)


def test_a_composite_alarm_shows_its_rule_and_the_states_of_its_children(
    live: LiveServer, signed_in: Any
) -> None:
    seed_checkout(live)
    _at(live, datetime.now(UTC), alarms.set_state, ALARM, "ALARM", "drill again")
    page = signed_in("eve", path="/ops/alarms/checkout-down")
    assert page.get_by_test_id("rule").inner_text() == f'ALARM("{ALARM}")'
    child = page.get_by_test_id("children").locator(f"tr[data-alarm='{ALARM}']")
    assert child.locator(".state").inner_text() == "ALARM"
    assert page.get_by_test_id("alarm-chart").locator("rect.band").count() >= 1
    child.get_by_role("link", name=ALARM).click()
    page.wait_for_url(f"**/ops/alarms/{ALARM}")


def test_the_metrics_explorer_graphs_a_statistic(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed_checkout(live)
    page = signed_in("vic", path="/ops/metrics")
    page.get_by_label("Metric").fill("api_latency_ms")
    page.get_by_label("Labels").fill("service=checkout")
    page.get_by_label("Statistic").fill("max")
    page.get_by_label("Range").select_option("6h")
    page.get_by_role("button", name="Show").click()
    chart = page.get_by_test_id("metric-chart")
    chart.wait_for()
    page.screenshot(path=str(shots_dir / "ops-metrics.png"), full_page=True)
    values = [v for _, v in _dots(chart)]
    assert max(values) == 450 + max(m % 7 for m in SLOW_MINUTES)
    assert "max of api_latency_ms" in chart.locator("figcaption").inner_text()

    page.get_by_label("Labels").fill("service")
    page.get_by_role("button", name="Show").click()
    assert "'service' is not label=value" in page.get_by_test_id("explorer-error").inner_text()
    assert page.get_by_label("Labels").input_value() == "service", "the form keeps the input"


def test_a_ticket_is_acknowledged_commented_and_resolved_on_its_page(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    ticket_id = seed_ticket(live)
    page = signed_in("eve", path="/ops/tickets?state=open")
    page.get_by_role("link", name="Search results are empty").click()
    page.wait_for_url(f"**/ops/tickets/{ticket_id}")
    assert page.get_by_test_id("ticket-state").inner_text() == "open"

    page.get_by_role("button", name="Acknowledge").click()
    wait_until(
        page, "document.querySelector('[data-testid=ticket-state]').textContent === 'acknowledged'"
    )
    assert page.get_by_test_id("assignee").inner_text() == "eve"
    assert page.get_by_role("button", name="Acknowledge").count() == 0

    page.get_by_label("Comment").fill("the eu index lost its alias")
    page.get_by_role("button", name="Add comment").click()
    page.locator(".timeline li[data-kind='comment']").wait_for()
    assert "the eu index lost its alias" in page.get_by_test_id("timeline").inner_text()

    page.get_by_label("What fixed it").fill("alias restored")
    page.get_by_role("button", name="Resolve").click()
    wait_until(
        page, "document.querySelector('[data-testid=ticket-state]').textContent === 'resolved'"
    )
    page.screenshot(path=str(shots_dir / "ops-ticket.png"), full_page=True)
    kinds = page.locator(".timeline li").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["created", "acknowledged", "comment", "resolved"]
    assert page.get_by_test_id("actions").count() == 0
    assert page.console_errors == []

    page.goto("/ops/tickets?state=resolved")
    page.screenshot(path=str(shots_dir / "ops-tickets.png"), full_page=True)
    assert page.locator(f"tr[data-ticket='{ticket_id}']").count() == 1
    page.goto("/ops/tickets?state=open")
    assert page.locator(f"tr[data-ticket='{ticket_id}']").count() == 0


def test_a_viewer_reads_a_ticket_but_cannot_act_on_it(live: LiveServer, signed_in: Any) -> None:
    now = seed_checkout(live)
    _at(live, now, alarms.set_state, ALARM, "ALARM", "drill")
    ticket_id = _at(live, now, tickets.on_alarm, ALARM, "ALARM", "p99 above 300").id
    page = signed_in("vic", path="/ops")
    page.get_by_role("link", name=f"{ALARM} is in ALARM").click()
    page.wait_for_url(f"**/ops/tickets/{ticket_id}")
    assert page.get_by_test_id("timeline").is_visible()
    assert (
        page.get_by_test_id("links").get_by_role("link", name=ALARM).get_attribute("href")
        == f"/ops/alarms/{ALARM}"
    )
    assert page.get_by_test_id("actions").count() == 0
    assert page.get_by_role("button", name="Add comment").count() == 0
    assert page.get_by_test_id("read-only").is_visible()

    # Sent anyway (as htmx would), the server refuses and says why.
    page.evaluate(
        "id => htmx.ajax('POST', `/ops/tickets/${id}/acknowledge`, {source: document.body, swap: 'none'})",
        ticket_id,
    )
    flash = page.locator("#flash")
    flash.wait_for()
    assert re.search(r"vic needs the engineer role", flash.inner_text())
    page.reload()
    assert page.get_by_test_id("ticket-state").inner_text() == "open"
    assert page.console_errors.unexpected(403) == []


BAD_ADDRESSES = [
    ("/ops/alarms?state=FIRING", 422, "state: 'FIRING' is not one of"),
    ("/ops/alarms?service=nope", 422, "no service 'nope'"),
    (f"/ops/alarms/{ALARM}?range=2y", 422, "range: '2y' is not one of 1h, 6h, 24h, 7d"),
    ("/ops/alarms/no-such-alarm", 404, "alarm 'no-such-alarm' not found"),
    ("/ops/tickets?state=closed", 422, "state: 'closed' is not one of open"),
    ("/ops/tickets?severity=SEV9", 422, "severity: 'SEV9' is not 1 (SEV1) to 5"),
    ("/ops/tickets/999999", 404, "ticket 999999 not found"),
    ("/ops/tickets/99999999999", 422, ""),
    ("/ops/tickets/abc", 422, ""),
    ("/ops/metrics?metric=api_latency_ms&statistic=p999x", 422, "statistic 'p999x' is not one of"),
    ("/ops/metrics?metric=9lives", 422, "'9lives' is not a Prometheus metric name"),
    ("/ops/metrics?metric=api_latency_ms&range=forever", 422, "range: 'forever'"),
]


def test_bad_query_parameters_get_a_page_that_names_them(live: LiveServer, signed_in: Any) -> None:
    seed_checkout(live)
    page = signed_in("vic", path="/ops")
    for address, status, message in BAD_ADDRESSES:
        response = page.goto(address)
        assert response.status == status, address
        assert "Traceback" not in page.content()
        assert message.lower() in page.locator("main").inner_text().lower(), address
        assert page.get_by_role("navigation", name="Main").is_visible()


def test_the_ops_pages_fit_a_phone(live: LiveServer, signed_in: Any, shots_dir: Any) -> None:
    seed_checkout(live)
    ticket_id = seed_ticket(live)
    page = signed_in("eve", viewport=PHONE, path="/ops/alarms")
    for path in (
        "/ops/alarms",
        f"/ops/alarms/{ALARM}",
        "/ops/alarms/checkout-down",
        "/ops/tickets",
        f"/ops/tickets/{ticket_id}",
        "/ops/metrics?metric=api_latency_ms&statistic=p99&range=24h",
    ):
        assert page.goto(path).status == 200
        no_sideways_scroll(page)
    page.goto(f"/ops/alarms/{ALARM}")
    page.screenshot(path=str(shots_dir / "ops-alarm-phone.png"), full_page=True)
    assert page.get_by_test_id("alarm-chart").locator("svg").bounding_box()["width"] > 250
