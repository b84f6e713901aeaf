"""The schedule page's forms in Chromium: an engineer of the owning team adds an override
in the schedule's zone and sees it in the table; the same form in a tab opened before
that change is refused with a message saying to reload; the override is removed; two
upcoming shifts are swapped from the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.ops import schedules
from tests.browser.conftest import LiveServer
from tests.browser.test_oncall_page import LAYER

pytestmark = pytest.mark.browser
BERLIN = ZoneInfo("Europe/Berlin")
PATH = "/ops/oncall/schedules/payments-primary"


def seed(live: LiveServer) -> None:
    with live.db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        schedules.create_schedule(ctx, "payments", "payments-primary", "Europe/Berlin", [LAYER])


def model(live: LiveServer) -> Any:
    with live.db.transaction(write=False) as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        return schedules.model(schedules.get_schedule(ctx, "payments-primary"))


def test_an_override_is_added_refused_when_stale_and_removed(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed(live)
    page = signed_in("eve", path=PATH)
    older = page.context.new_page()
    older.goto(live.url + PATH)

    day = (datetime.now(UTC) + timedelta(days=3)).astimezone(BERLIN).date()
    form = page.get_by_test_id("add-override")
    form.get_by_label("Who", exact=True).fill("ada")
    form.get_by_label("From").fill(f"{day}T19:00")
    form.get_by_label("To").fill(f"{day}T23:00")
    form.get_by_label("Times in").select_option("schedule")
    form.get_by_role("button", name="Add override").click()
    row = page.get_by_test_id("overrides").locator("tbody tr[data-override^='o-']")
    row.wait_for()
    page.screenshot(path=str(shots_dir / "ops-oncall-override.png"), full_page=True)
    begins = datetime(day.year, day.month, day.day, 19, tzinfo=BERLIN).astimezone(UTC)
    assert "ada" in row.inner_text() and f"{begins:%Y-%m-%d %H:%M}" in row.inner_text()

    # The tab opened before: its form carries the old version.
    form = older.get_by_test_id("add-override")
    form.get_by_label("Who", exact=True).fill("leo")
    form.get_by_label("From").fill(f"{day}T08:00")
    form.get_by_label("To").fill(f"{day}T09:00")
    form.get_by_role("button", name="Add override").click()
    flash = older.get_by_role("alert")
    flash.wait_for()
    assert "changed the schedule" in flash.inner_text()
    assert "Reload the page" in flash.inner_text()
    assert [o.user for o in model(live).overrides] == ["ada"]

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    page.get_by_test_id("overrides").locator("td.empty").wait_for()
    assert model(live).overrides == ()


def test_two_upcoming_shifts_are_swapped(live: LiveServer, signed_in: Any) -> None:
    seed(live)
    page = signed_in("eve", path=PATH)
    form = page.get_by_test_id("swap")
    first = form.get_by_label("Shift").locator("option").nth(2)
    second = form.get_by_label("With").locator("option").nth(3)
    first_text, second_text = first.inner_text(), second.inner_text()
    form.get_by_label("Shift").select_option(first.get_attribute("value"))
    form.get_by_label("With").select_option(second.get_attribute("value"))
    form.get_by_role("button", name="Swap").click()
    page.get_by_test_id("overrides").locator("tbody tr[data-override^='s-']").first.wait_for()
    overrides = model(live).overrides
    assert len(overrides) == 2
    who = {o.replaces: o.user for o in overrides}
    assert who[first_text.split(":")[0]] == second_text.split(":")[0]


def test_a_viewer_sees_no_forms(live: LiveServer, signed_in: Any) -> None:
    seed(live)
    page = signed_in("vic", path=PATH)
    assert page.get_by_test_id("overrides").is_visible()
    assert page.get_by_test_id("add-override").count() == 0
    assert page.get_by_test_id("swap").count() == 0
