"""The on-call page: who is on call now, the calendar in the viewer's time zone, and a page
acknowledged from the list (and the home page telling the paged person first)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.ops import alarms, oncall, paging, schedules, tickets
from mechanisms.ops.tables import Page
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

LAYER = {
    "participants": ["eve", "leo"],
    "rotation": {"type": "daily", "handoff_time": "09:00"},
    "start": "2026-01-01T09:00:00Z",
}


def _seed(live: LiveServer) -> tuple[str, int]:
    """Payments on call (eve and leo daily, all day) and a SEV1 ticket that paged the
    person on call now; returns that person and the page."""
    with live.db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        alarms.create_service(ctx, "checkout", "Checkout", "payments")
        row = schedules.create_schedule(ctx, "payments", "payments-primary", "UTC", [LAYER])
        evenings = {**LAYER, "restrictions": [{"kind": "daily", "start": "18:00", "end": "22:00"}]}
        schedules.create_schedule(ctx, "payments", "payments-evenings", "Europe/Berlin", [evenings])
        levels = [
            {"targets": [{"kind": "schedule", "name": "payments-primary"}], "timeout_minutes": 15}
        ]
        schedules.create_policy(ctx, "payments", "payments-default", levels, default=True)
        ticket, _ = tickets.cut(ctx, alarms.get_service(ctx, "checkout"), "Checkout is down", 1)
        page = paging.on_ticket(ctx, ticket.id)
        paging.escalate(ctx, page.id)
        person = oncall.who_is_on_call(schedules.model(row), ctx.now).person
        return person, page.id


def test_the_on_call_sees_who_is_on_and_acknowledges_their_page(
    live: LiveServer, signed_in: Any
) -> None:
    person, page_id = _seed(live)
    page = signed_in(person)
    attention = page.locator(".attention li", has_text="You were paged: Checkout is down")
    assert attention.is_visible()

    page.get_by_role("link", name="Ops").first.click()
    page.get_by_role("link", name="On call").click()
    page.wait_for_url("**/ops/oncall")
    assert "payments-primary" in page.get_by_test_id("my-shifts").inner_text()
    now_row = page.locator("table.oncall-now tr[data-schedule='payments-primary']")
    assert now_row.locator("td.person").inner_text() == person
    calendar = page.get_by_test_id("oncall-calendar")
    bars = calendar.locator("g.cal-row[data-schedule='payments-primary'] g.shift")
    assert bars.count() >= 7, "a week of daily shifts"
    assert set(bars.evaluate_all("gs => gs.map(g => g.dataset.person)")) == {"eve", "leo"}
    assert calendar.locator("g.cal-row[data-schedule='payments-evenings'] rect.gap").count() > 0
    assert "UTC" in page.locator(".oncall-calendar figcaption").inner_text()

    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.wait_for_url("**tz=Europe%2FBerlin**")
    assert "Europe/Berlin" in page.locator(".oncall-calendar figcaption").inner_text()
    # 09:00 UTC handoffs sit at 10:00 in Berlin in winter and 11:00 in summer.
    title = page.locator("g.cal-row[data-schedule='payments-primary'] g.shift title").nth(1)
    assert any(f" {h}:00 – " in title.text_content() for h in ("10", "11"))

    page.get_by_role("link", name="Pages", exact=True).click()
    page.wait_for_url("**/ops/oncall/pages")
    row = page.locator(f"tr[data-page='{page_id}']")
    assert row.locator("mark").inner_text() == "triggered"
    row.get_by_role("button", name="Acknowledge").click()
    page.locator(f"tr[data-page='{page_id}'] mark", has_text="acknowledged").wait_for()
    with live.db.transaction(write=False) as session:
        stored = session.execute(select(Page).where(Page.id == page_id)).scalar_one()
        assert (stored.state, stored.acknowledged_by) == ("acknowledged", person)
    assert page.console_errors.unexpected() == []
