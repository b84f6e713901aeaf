"""Signing in and out, and the audit trail a sign-in leaves behind."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import WebSession
from tests.browser.conftest import DESKTOP, LiveServer, sign_in, wait_until
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def _audit_actions(page: Any) -> list[str]:
    return page.locator("#audit-rows tr[data-action]").evaluate_all(
        "rows => rows.map(r => r.dataset.action)"
    )


def test_ada_signs_in_and_finds_her_sign_in_in_the_audit_trail(new_page: Any) -> None:
    page = new_page(DESKTOP)
    page.goto("/")
    page.wait_for_url("**/login?next=/")
    sign_in(page, "ada")
    assert page.url.endswith("/")
    assert page.get_by_test_id("attention-empty").inner_text() == (
        "Nothing needs your attention right now."
    )
    assert page.get_by_test_id("whoami").inner_text() == "ada"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    page.wait_for_url("**/audit")
    login_row = page.locator('#audit-rows tr[data-action="user.login"]')
    assert login_row.count() == 1
    assert login_row.locator("td.actor").inner_text() == "ada"
    assert "token.created" in _audit_actions(page)

    # Filtering swaps only the rows (htmx): a value set on the page survives it.
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("action").fill("user.login")
    wait_until(
        page,
        "[...document.querySelectorAll('#audit-rows tr[data-action]')]"
        ".every(r => r.dataset.action === 'user.login')",
    )
    assert _audit_actions(page) == ["user.login"]
    assert page.evaluate("window.stillTheSamePage") is True
    assert "action=user.login" in page.url, "the filter is in the address, so it can be shared"

    page.get_by_label("action").fill("no.such.action")
    page.get_by_text("No records match.").wait_for()
    assert _audit_actions(page) == []
    assert page.console_errors.unexpected() == []


def test_older_audit_records_load_below_the_newest(live: LiveServer, signed_in: Any) -> None:
    with live.db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        for n in range(60):
            accounts.create_team(ctx, f"team-{n:02d}", f"Team {n:02d}", parent="acme")
    page = signed_in("ada", path="/audit?action=team.created")
    rows = page.locator("#audit-rows tr[data-action]")
    assert rows.count() == 50
    page.get_by_role("button", name="Older records").click()
    wait_until(page, "document.querySelectorAll('#audit-rows tr[data-action]').length === 62")
    seqs = [int(s) for s in page.locator("#audit-rows td.seq").all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True), "newest first, older ones appended below"
    assert page.get_by_role("button", name="Older records").count() == 0
    assert page.console_errors.unexpected() == []


def test_a_page_asked_for_before_sign_in_opens_after_it(new_page: Any) -> None:
    page = new_page()
    page.goto("/audit")
    page.wait_for_url("**/login?next=/audit")
    sign_in(page, "leo")
    page.wait_for_url("**/audit")
    assert page.get_by_role("heading", level=1).inner_text() == "Audit trail"


def test_a_wrong_password_says_so_and_keeps_the_username(new_page: Any) -> None:
    page = new_page()
    page.goto("/audit")
    page.wait_for_url("**/login?next=/audit")
    sign_in(page, "ada", password="not her password")
    assert page.get_by_role("alert").filter(has_text="wrong username or password").is_visible()
    assert page.get_by_label("Username").input_value() == "ada"
    assert page.get_by_label("Password").input_value() == ""
    assert "/login" in page.url
    # A second, correct try still goes where the person was heading.
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/audit")
    assert page.console_errors.unexpected(401) == []


def test_sign_out_ends_the_session(live: LiveServer, signed_in: Any) -> None:
    page = signed_in("eve")
    other_tab = page.context.new_page()
    other_tab.goto("/audit")
    cookie = next(c for c in page.context.cookies() if c["name"] == "mech_session")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto("/")
    page.wait_for_url("**/login?next=/")

    # The session is over on the server, not only forgotten by this browser.
    with httpx.Client(base_url=live.url, cookies={"mech_session": cookie["value"]}) as client:
        response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")

    # A tab left open on the old session is sent to sign in at its next request.
    other_tab.get_by_label("actor").fill("eve")
    other_tab.wait_for_url(re.compile(r"/login\?next=/audit"))
    assert other_tab.get_by_role("button", name="Sign in").is_visible()


def test_an_action_after_the_session_ended_returns_to_the_page_after_sign_in(
    live: LiveServer, signed_in: Any
) -> None:
    page = signed_in("eve", path="/profile")
    with live.db.transaction() as session:
        session.execute(update(WebSession).values(ended_at=datetime.now(UTC)))
    page.get_by_label("Name").fill("nightly")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    sign_in(page, "eve")
    page.wait_for_url("**/profile")
    assert page.get_by_role("heading", level=1).inner_text() == "eve"
    assert page.get_by_test_id("new-token").count() == 0, "nothing was done on the stale page"
