"""The deploys pages in Chromium: the pipeline view with a blocked gate and its reason,
the calendar with the weekend window, and break-glass from the blocked promotion to a
grant by two approvers (one a leader), with a viewer who cannot act. On a phone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.identity import Principal, system_principal
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.ops import alarms, tickets
from tests.browser.conftest import PHONE, LiveServer, serve, wait_until
from tests.browser.test_flags_support import no_sideways_scroll
from tests.deploys.conftest import PASSING

pytestmark = pytest.mark.browser


@pytest.fixture
def live(db: Database) -> Iterator[LiveServer]:
    """These pages on both backends: break-glass and promotions are where they differ."""
    yield from serve(db)


STAGES = [
    {"name": "beta", "required_suites": ["integration"], "bake_minutes": 30},
    {"name": "prod", "required_suites": ["integration"]},
]
WEEKEND = {
    "kind": "recurring",
    "rrule": "FREQ=WEEKLY;BYDAY=FR",
    "dtstart": "2026-01-02T15:00:00",
    "end_time": "09:00",
    "days_later": 3,
    "tz": "Europe/Berlin",
}


def _at(live: LiveServer, when: datetime, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with live.db.transaction() as session:
        return fn(Ctx(session, system_principal("test"), when), *args, **kwargs)


def seed_blocked(live: LiveServer) -> int:
    """checkout v1 baked in beta an hour ago; prod frozen for a day. Returns a SEV2 ticket."""
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)
    _at(live, hour_ago, alarms.create_service, "checkout", "Checkout", "payments")
    _at(live, hour_ago, pipelines.set_pipeline, "checkout", STAGES)
    _at(live, hour_ago, accounts.create_user, "sam")  # the author is an account
    _at(live, hour_ago, pipelines.register_version, "checkout", "v1", "sha256:aaa", "sam")
    _at(live, hour_ago, pipelines.upload_tests, "checkout", "v1", "integration", PASSING)
    _at(live, hour_ago, pipelines.promote, "checkout", "beta", "v1")
    _at(live, now, windows.freeze, "stage", "checkout/prod", now + timedelta(days=1), "year-end")
    _at(live, now, windows.create_window, "service", "checkout", WEEKEND, "weekend rest")
    return _at(live, now, tickets.create, "checkout", "EU cards fail", 2).id


def test_pipeline_view_shows_the_blocked_gate_and_break_glass_is_granted_by_two(
    live: LiveServer, signed_in: Any
) -> None:
    ticket = seed_blocked(live)
    page = signed_in("eve", viewport=PHONE, path="/deploys/services/checkout")
    gate = page.get_by_test_id("gate-prod")
    assert "BLOCKED" in gate.inner_text()
    assert "year-end" in gate.locator("[data-gate=windows]").inner_text()
    assert gate.locator("[data-gate=tests]").inner_text().endswith("ok")
    no_sideways_scroll(page)

    gate.get_by_test_id("request-breakglass").click()
    page.wait_for_url("**/breakglass/new*")
    page.get_by_label("Reason").fill("the EU card fix")
    page.get_by_label("SEV1/SEV2 ticket").fill(f"#{ticket}")
    page.get_by_role("button", name="Request break-glass").click()
    page.wait_for_url("**/deploys/breakglass/*")
    address = page.url
    assert page.get_by_test_id("status").inner_text() == "pending"
    no_sideways_scroll(page)

    viewer = signed_in("vic", viewport=PHONE, path=address)
    assert viewer.get_by_test_id("read-only").is_visible()
    assert viewer.get_by_test_id("approve").count() == 0
    assert "EU cards fail" in viewer.get_by_test_id("ticket").inner_text()
    diff = viewer.get_by_test_id("diff").inner_text()
    assert "v1" in diff and "sam" in diff  # the requested artifact and its author
    no_sideways_scroll(viewer)

    # The requester is refused, and the refusal shows in the page.
    page.get_by_test_id("approve").click()
    flash = page.locator("#flash")
    flash.wait_for()
    assert "requester" in flash.inner_text()
    assert page.get_by_test_id("status").inner_text() == "pending"

    for approver, status in (("leo", "pending"), ("ada", "granted")):
        other = signed_in(approver, viewport=PHONE, path=address)
        other.get_by_test_id("approve").click()
        wait_until(
            other,
            "s => document.querySelector('[data-testid=approvals]').innerText.includes(s)",
            arg=approver,
        )
        assert other.get_by_test_id("status").inner_text() == status
    viewer.reload()
    assert viewer.get_by_test_id("status").inner_text() == "granted"


def test_the_calendar_shows_the_weekend_window(live: LiveServer, signed_in: Any) -> None:
    seed_blocked(live)
    page = signed_in(
        "vic", viewport=PHONE, path="/deploys/services/checkout/calendar?month=2027-01"
    )
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**tz=Europe%2FBerlin*")
    saturday = page.locator("td[data-date='2027-01-09']")
    assert "blocked" in (saturday.get_attribute("class") or "")
    assert "blocked" not in (
        page.locator("td[data-date='2027-01-13']").get_attribute("class") or ""
    )
    assert "Fri 08 Jan 15:00 – Mon 11 Jan 09:00" in page.get_by_test_id("blocks").inner_text()
    no_sideways_scroll(page)
    page.get_by_test_id("next-month").click()
    page.wait_for_url("**month=2027-02**")
    assert "February 2027" in page.locator("h1").inner_text()


def test_every_deploys_page_fits_a_phone(live: LiveServer, signed_in: Any) -> None:
    seed_blocked(live)
    page = signed_in("eve", viewport=PHONE, path="/deploys")
    assert page.locator("[data-service=checkout]").is_visible()
    for path in (
        "/deploys",
        "/deploys/reviews",
        "/deploys/services/checkout/calendar",
        "/deploys/services/checkout/breakglass/new?stage=prod&version=v1",
    ):
        page.goto(path)
        no_sideways_scroll(page)
    assert page.console_errors.unexpected() == []


def _as(live: LiveServer, username: str) -> Principal:
    with live.db.transaction(write=False) as session:
        user = accounts.find_user(session, username)
        return Principal(user_id=user.id, username=user.username, via="session")


def _granted(live: LiveServer, ticket: int) -> int:
    """eve asks break-glass for checkout v1 into prod; leo (leader) and ada approve."""
    now = datetime.now(UTC)
    with live.db.transaction() as session:
        ctx = Ctx(session, _as(live, "eve"), now)
        request_id = breakglass.request(ctx, "checkout", "prod", "v1", "EU fix", str(ticket)).id
    for approver in ("leo", "ada"):
        with live.db.transaction() as session:
            breakglass.approve(
                Ctx(session, _as(live, approver), now),
                request_id,
                service="checkout",
                stage="prod",
                digest="sha256:aaa",
            )
    return request_id


def test_the_promote_button_promotes_an_open_gate(live: LiveServer, signed_in: Any) -> None:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    _at(live, hour_ago, alarms.create_service, "checkout", "Checkout", "payments")
    _at(live, hour_ago, pipelines.set_pipeline, "checkout", STAGES)
    _at(live, hour_ago, accounts.create_user, "sam")  # the author is an account
    _at(live, hour_ago, pipelines.register_version, "checkout", "v1", "sha256:aaa", "sam")
    _at(live, hour_ago, pipelines.upload_tests, "checkout", "v1", "integration", PASSING)

    viewer = signed_in("vic", viewport=PHONE, path="/deploys/services/checkout")
    assert "OPEN" in viewer.get_by_test_id("gate-beta").inner_text()
    assert viewer.get_by_test_id("promote-beta").count() == 0

    page = signed_in("eve", viewport=PHONE, path="/deploys/services/checkout")
    page.get_by_test_id("promote-beta").click()
    beta = page.locator("[data-stage=beta]")
    beta.locator(".deploy-state").wait_for()
    assert "baking" in beta.inner_text() and "v1" in beta.inner_text()
    assert page.get_by_test_id("gate-beta").count() == 0  # v1 runs there now
    assert "promoted" in page.get_by_test_id("timeline").inner_text()
    no_sideways_scroll(page)


def test_a_blocked_stage_offers_break_glass_and_the_button_spends_the_grant(
    live: LiveServer, signed_in: Any
) -> None:
    ticket = seed_blocked(live)
    page = signed_in("eve", viewport=PHONE, path="/deploys/services/checkout")
    gate = page.get_by_test_id("gate-prod")
    assert "BLOCKED" in gate.inner_text()
    assert "year-end" in gate.locator("[data-gate=windows]").inner_text()
    assert gate.get_by_test_id("promote-prod").count() == 0
    assert gate.get_by_test_id("request-breakglass").is_visible()

    request_id = _granted(live, ticket)
    page.reload()
    gate = page.get_by_test_id("gate-prod")
    assert "OPEN" in gate.inner_text()
    assert gate.get_by_test_id("spends-grant").is_visible()
    gate.get_by_test_id("promote-prod").click()
    prod = page.locator("[data-stage=prod]")
    prod.locator(".deploy-state").wait_for()
    assert "v1" in prod.inner_text()
    timeline = page.get_by_test_id("timeline").inner_text()
    assert "breakglass used" in timeline and "promoted" in timeline
    page.goto(f"/deploys/breakglass/{request_id}")
    assert page.get_by_test_id("status").inner_text() == "used"
