"""The silences page in Chromium: an engineer silences an alarm from the form (wall-clock
times in a zone of their choice), sees it active and the alarm "silenced until ..." on
the alarms list, is told which field is wrong, and deletes it; a viewer sees no forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mechanisms.ops import alarms
from tests.browser.conftest import LiveServer
from tests.browser.test_ops_pages import _at

pytestmark = pytest.mark.browser
NEW_YORK = ZoneInfo("America/New_York")
DEFINITION = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 300,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
}


def seed(live: LiveServer) -> datetime:
    now = datetime.now(UTC)
    _at(live, now, alarms.create_service, "checkout", "Checkout", "payments")
    for name in ("checkout-slow", "checkout-errors"):
        _at(
            live,
            now,
            alarms.create_alarm,
            name,
            "checkout",
            metric="api_latency_ms",
            match={"service": "checkout"},
            definition=DEFINITION,
        )
    return now


def test_an_engineer_silences_an_alarm_and_deletes_the_silence(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    now = seed(live)
    page = signed_in("eve", path="/ops")
    page.get_by_role("navigation", name="Ops").get_by_role("link", name="Silences").click()
    page.wait_for_url("**/ops/silences")
    assert page.get_by_test_id("no-silences").is_visible()

    form = page.get_by_test_id("new-silence")
    end = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    form.get_by_label("Name").fill("db failover")
    form.get_by_label("Time zone").fill("America/New_York")
    form.get_by_label("Starts").fill(
        f"{(now - timedelta(hours=1)).astimezone(NEW_YORK):%Y-%m-%dT%H:%M}"
    )
    form.get_by_label("Ends").fill(f"{end.astimezone(NEW_YORK):%Y-%m-%dT%H:%M}")
    form.get_by_label("Alarms").select_option(["checkout-slow"])
    form.get_by_label("Comment").fill("planned")
    form.get_by_role("button", name="Create silence").click()
    row = page.locator("tr[data-silence='db failover']")
    row.wait_for()
    page.screenshot(path=str(shots_dir / "ops-silences.png"), full_page=True)
    assert row.get_attribute("data-active") == "yes"
    assert f"until {end:%Y-%m-%d %H:%M}" in row.get_by_test_id("status").inner_text()

    page.goto(live.url + "/ops/alarms")
    slow = page.locator("tr[data-alarm='checkout-slow']")
    assert (
        slow.get_by_test_id("silenced").inner_text() == f"silenced until {end:%Y-%m-%d %H:%M} UTC"
    )
    assert page.locator("tr[data-alarm='checkout-errors']").get_by_test_id("silenced").count() == 0

    # A window that ends before it starts: the form says which field, nothing is stored.
    page.goto(live.url + "/ops/silences")
    form = page.get_by_test_id("new-silence")
    form.get_by_label("Name").fill("backwards")
    form.get_by_label("Starts").fill("2030-01-02T10:00")
    form.get_by_label("Ends").fill("2030-01-02T09:00")
    form.get_by_role("button", name="Create silence").click()
    flash = page.get_by_role("alert")
    flash.wait_for()
    assert "end" in flash.inner_text() and "after start" in flash.inner_text()
    assert page.locator("tr[data-silence='backwards']").count() == 0

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-silence='db failover']").get_by_role(
        "button", name="Delete db failover"
    ).click()
    page.get_by_test_id("no-silences").wait_for()
    page.goto(live.url + "/ops/alarms")
    assert page.get_by_test_id("silenced").count() == 0


def test_a_viewer_sees_silences_without_forms(live: LiveServer, signed_in: Any) -> None:
    now = seed(live)
    from mechanisms.ops import silences

    schedule = silences.Schedule(
        (now - timedelta(hours=1)).replace(tzinfo=None),
        (now + timedelta(hours=1)).replace(tzinfo=None),
        "UTC",
        None,
        ("checkout-errors",),
    )
    _at(live, now, silences.create, "quiet", schedule)
    page = signed_in("vic", path="/ops/silences")
    assert page.locator("tr[data-silence='quiet']").get_attribute("data-active") == "yes"
    assert page.get_by_test_id("new-silence").count() == 0
    assert page.get_by_role("button", name="Delete quiet").count() == 0
