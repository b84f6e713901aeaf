"""Every main page at phone and desktop width: nothing makes the whole page scroll
sideways, the navigation can be used, and the browser logs no errors.

Screenshots land in a temporary folder (or MECH_SCREENSHOTS=dir) for a person to look at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Delivery
from tests.browser.conftest import DESKTOP, PHONE, LiveServer

pytestmark = pytest.mark.browser

PAGES = {
    "home": ("/", "Hello, ada"),
    "audit": ("/audit", "Audit trail"),
    "teams": ("/teams", "Teams"),
    "profile": ("/profile", "ada"),
    "events": ("/events", "Events and webhooks"),
}
NAV = [("Home", "/"), ("Audit", "/audit"), ("Teams", "/teams"), ("Events", "/events")]


def _fill_with_long_content(live: LiveServer) -> None:
    """Long URLs, long error messages and many records: what pushes a layout sideways."""
    with live.db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        event = events.emit(
            ctx, "flags.rollout_step_finished", "flag", "checkout-redesign-2026", {"step": 3}
        )
        for n, status in enumerate(["dead", "pending", "delivered"]):
            session.add(
                Delivery(
                    event_id=event.id,
                    target=f"webhook:{n + 1}",
                    object_key="flag:checkout-redesign-2026",
                    status=status,
                    attempts=8 if status == "dead" else 1,
                    next_attempt_at=ctx.now,
                    version=0,
                    last_error="ConnectError: [Errno 111] Connection refused while sending to "
                    "https://hooks.internal.example.org/very/long/path/that/keeps/going/mechanisms",
                    delivered_at=ctx.now if status == "delivered" else None,
                )
            )


def _no_sideways_scroll(page: Any) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{page.url}: the page is {scroll}px wide in a {inner}px window"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_main_pages_fit_the_screen_and_log_no_errors(
    signed_in: Any, live: LiveServer, shots_dir: Any, viewport: dict[str, int]
) -> None:
    _fill_with_long_content(live)
    # A token with a long name, so the tokens table has something to show.
    page = signed_in("ada", viewport, path="/profile")
    page.get_by_label("Name").fill("deploy-pipeline-for-the-payments-service-production")
    page.get_by_role("button", name="Create token").click()
    page.get_by_test_id("new-token").wait_for()
    width = "phone" if viewport is PHONE else "desktop"
    for name, (path, heading) in PAGES.items():
        page.goto(path)
        assert page.get_by_role("heading", level=1).first.inner_text().startswith(heading)
        _no_sideways_scroll(page)
        page.screenshot(path=str(shots_dir / f"{name}-{width}.png"), full_page=True)
    assert page.console_errors.unexpected() == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_sign_in_and_error_pages_fit_the_screen(
    new_page: Any, signed_in: Any, shots_dir: Any, viewport: dict[str, int]
) -> None:
    width = "phone" if viewport is PHONE else "desktop"
    page = new_page(viewport)
    page.goto("/login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("login-error").wait_for()
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots_dir / f"login-{width}.png"), full_page=True)
    page = signed_in("vic", viewport, path="/events")
    page.get_by_test_id("error-page").wait_for()
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots_dir / f"error-{width}.png"), full_page=True)
    # The refusal is the page's answer, logged by the browser as a failed load.
    assert page.console_errors.unexpected(403) == []


def test_phone_menu_opens_and_leads_to_every_section(signed_in: Any, shots_dir: Any) -> None:
    page = signed_in("ada", PHONE)
    menu = page.locator("#main-menu")
    sections = menu.locator(".sections")
    assert not sections.is_visible(), "on a phone the sections fold away behind the menu"
    for label, path in NAV:
        menu.locator("summary").click()
        assert sections.is_visible()
        if label == "Home":
            page.screenshot(path=str(shots_dir / "menu-open-phone.png"))
        sections.get_by_role("link", name=label, exact=True).click()
        page.wait_for_url(f"**{path}")
        assert not sections.is_visible(), "the menu folds again on the new page"
        current = sections.locator(f'a[href="{path}"]')
        assert current.get_attribute("aria-current") == "page"
        _no_sideways_scroll(page)
    # A tap outside the open menu folds it away again.
    menu.locator("summary").click()
    page.mouse.click(PHONE["width"] / 2, PHONE["height"] - 20)
    assert not sections.is_visible()
    assert page.console_errors.unexpected() == []


def test_desktop_navigation_is_always_shown(signed_in: Any) -> None:
    page = signed_in("ada", DESKTOP)
    nav = page.locator("#main-menu .sections")
    assert nav.is_visible()
    assert not page.locator("#main-menu summary").is_visible()
    for label, path in NAV:
        nav.get_by_role("link", name=label, exact=True).click()
        page.wait_for_url(f"**{path}")
        assert nav.is_visible()
    assert page.locator("#main-menu").get_by_test_id("whoami").inner_text() == "ada"
    assert page.console_errors.unexpected() == []
