"""Issue #14, item 14: the pages work under a Content-Security-Policy that refuses inline
scripts: the browser records no violation, and the behaviours that used to be inline
handlers (submit on change, confirm, reset after success) still happen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

MAIN_PAGES = [
    "/",
    "/audit",
    "/teams",
    "/profile",
    "/events",
    "/flags",
    "/ops",
    "/ops/alarms",
    "/ops/tickets",
    "/ops/oncall",
    "/deploys",
    "/docs",
]


def violations(page: Any) -> list[str]:
    return [e for e in page.console_errors if "Content Security Policy" in e]


def test_the_main_pages_load_without_a_policy_violation(live: LiveServer, signed_in: Any) -> None:
    page = signed_in("ada")
    recorded: list[str] = []
    page.on(
        "response",
        lambda r: (
            recorded.append(r.headers.get("content-security-policy", ""))
            if r.request.resource_type == "document"
            else None
        ),
    )
    for path in MAIN_PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        # mech.js ran: the wide-screen menu is unfolded (it used to be an inline script).
        assert page.locator("#main-menu").get_attribute("open") is not None, path
    assert violations(page) == []
    assert page.console_errors.unexpected() == []
    assert recorded and all("script-src 'self'" in p for p in recorded)


def test_a_select_that_submits_on_change_still_does(live: LiveServer, signed_in: Any) -> None:
    page = signed_in("ada", path="/ops/alarms")
    page.locator("select[name=state]").select_option(index=1)
    page.wait_for_url("**/ops/alarms?*state=*")
    assert violations(page) == []


def test_the_token_form_empties_itself_after_creating_a_token(
    live: LiveServer, signed_in: Any
) -> None:
    page = signed_in("ada", path="/profile")
    form = page.get_by_role("form", name="Create an API token")
    form.get_by_label("Name").fill("laptop")
    form.get_by_role("button").first.click()
    page.get_by_text("laptop").first.wait_for()
    assert form.get_by_label("Name").input_value() == ""
    assert violations(page) == []
