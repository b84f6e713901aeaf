"""API tokens on the profile page: shown once, listed, revoked, and really (in)valid."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.conftest import PHONE, LiveServer

pytestmark = pytest.mark.browser


def _me(live: LiveServer, token: str) -> httpx.Response:
    with httpx.Client(base_url=live.url) as client:
        return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_create_use_and_revoke_a_token(
    live: LiveServer, signed_in: Any, viewport: dict[str, int] | None
) -> None:
    page = signed_in("eve", viewport)
    if viewport is PHONE:
        page.locator("#main-menu summary").click()
    page.get_by_test_id("whoami").click()
    page.wait_for_url("**/profile")

    page.get_by_label("Name").fill("ci-browser")
    page.get_by_label("Scope").select_option("engineer")
    page.get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_test_id("new-token")
    shown.wait_for()
    token = shown.locator("code").inner_text().strip()
    assert token.startswith("mech_")
    assert "will not be shown again" in shown.inner_text()
    assert page.get_by_label("Name").input_value() == "", "the form is ready for the next token"

    row = page.locator('tr[data-token-name="ci-browser"]')
    assert row.locator("code").inner_text() == token[:12] + "…"
    assert "engineer" in row.inner_text()

    me = _me(live, token)
    assert me.status_code == 200
    assert me.json()["user"]["username"] == "eve"
    assert me.json()["scope"] == "engineer"

    page.reload()
    assert page.get_by_test_id("new-token").count() == 0, "a token is shown only once"
    assert token not in page.content()

    # The confirmation guards against a slip: dismissing it changes nothing...
    messages: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    row.get_by_role("button", name="Revoke").click()
    assert messages == ["Revoke ci-browser? Anything using it stops working."]
    assert row.get_by_role("button", name="Revoke").is_visible()
    assert _me(live, token).status_code == 200

    # ...accepting it revokes the token at once.
    page.once("dialog", lambda d: answer(d, accept=True))
    row.get_by_role("button", name="Revoke").click()
    row.get_by_text("revoked").wait_for()
    assert row.get_by_role("button", name="Revoke").count() == 0
    refused = _me(live, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "the API token was revoked"
    assert page.console_errors.unexpected() == []


def test_a_token_without_a_name_is_refused_with_a_reason(live: LiveServer, signed_in: Any) -> None:
    """The browser asks for a name; a name the server refuses says why, in the page."""
    page = signed_in("eve", path="/profile")
    page.get_by_role("button", name="Create token").click()
    assert page.get_by_label("Name").evaluate("el => !el.validity.valid")
    assert page.get_by_test_id("new-token").count() == 0

    # A name the server refuses (only spaces) shows why in the page's message area.
    page.get_by_label("Name").fill("   ")
    page.get_by_role("button", name="Create token").click()
    flash = page.locator("#flash")
    flash.wait_for()
    assert "name" in flash.inner_text()
    assert page.get_by_label("Name").input_value() == "   ", "what was typed stays"
    assert page.console_errors.unexpected(422) == []
