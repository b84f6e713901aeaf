"""A viewer can look around, and is told plainly when something is not theirs to do."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from mechanisms.core.tables import Webhook
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser

ADD_WEBHOOK = {"url": "https://attacker.example.org/hook", "event_types": "*"}


def _csrf_token(page: Any) -> str:
    return page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")


def _webhook_count(live: LiveServer) -> int:
    with live.db.transaction(write=False) as session:
        return session.execute(select(func.count()).select_from(Webhook)).scalar_one()


def test_a_viewer_reads_pages_but_is_refused_admin_actions(
    live: LiveServer, signed_in: Any
) -> None:
    page = signed_in("vic")
    for path, heading in [
        ("/", "Hello, vic"),
        ("/audit", "Audit trail"),
        ("/teams", "Teams"),
        ("/profile", "vic"),
    ]:
        response = page.goto(path)
        assert response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == heading
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Events").count() == 0, "no link to a page vic may not use"

    # Typing the address anyway gives a page that says why, not a traceback.
    response = page.goto("/events")
    assert response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    assert page.get_by_text("vic needs the admin role for the whole site").is_visible()
    assert "Traceback" not in page.content()
    assert nav.get_by_test_id("whoami").is_visible(), "the navigation is still there"

    # An admin action sent from a page (as htmx does) is refused in the page's message area.
    page.goto("/profile")
    page.evaluate(
        "values => htmx.ajax('POST', '/events/webhooks', {source: document.body, values, swap: 'none'})",
        ADD_WEBHOOK,
    )
    flash = page.locator("#flash")
    flash.wait_for()
    assert flash.inner_text() == "vic needs the admin role for the whole site"

    # The same action as a plain form post (no JavaScript) gets the error page.
    answer = page.request.post(
        "/events/webhooks", form={**ADD_WEBHOOK, "csrf_token": _csrf_token(page)}
    )
    assert answer.status == 403
    assert "text/html" in answer.headers["content-type"]
    assert "Not allowed" in answer.text() and "admin role" in answer.text()
    assert _webhook_count(live) == 0
    assert page.console_errors.unexpected(403) == []


def test_a_form_post_without_the_session_csrf_token_is_refused(
    live: LiveServer, signed_in: Any
) -> None:
    page = signed_in("ada")
    answer = page.request.post("/events/webhooks", form=ADD_WEBHOOK)
    assert answer.status == 403
    assert "CSRF token" in answer.text()
    answer = page.request.post("/events/webhooks", form={**ADD_WEBHOOK, "csrf_token": "guess"})
    assert answer.status == 403
    assert _webhook_count(live) == 0
