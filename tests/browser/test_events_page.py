"""The events page: webhooks added from the page, dead-lettered deliveries retried."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from mechanisms.core import events, webhooks
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.core.tables import Delivery, Webhook
from tests.browser.conftest import PHONE, LiveServer

pytestmark = pytest.mark.browser


def _dead_delivery(live: LiveServer) -> int:
    """A webhook delivery that used up its retries, as the worker leaves it."""
    with live.db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        hook, _secret = webhooks.create(ctx, "https://receiver.example.org/hook", ["flags.*"])
        event = events.emit(ctx, "flags.rolled_back", "flag", "checkout", {"reason": "alarm"})
        while events.fan_out(session, ctx.now, 100):
            pass
        delivery = session.execute(
            select(Delivery).where(Delivery.target == f"webhook:{hook.id}")
        ).scalar_one()
        assert delivery.event_id == event.id
        delivery.status = "dead"
        delivery.attempts = 8
        delivery.last_error = "HTTP 503"
        return delivery.id


def test_adding_a_webhook_shows_its_secret_once(live: LiveServer, signed_in: Any) -> None:
    page = signed_in("ada")
    page.get_by_role("link", name="Events").click()
    page.wait_for_url("**/events")
    assert page.get_by_text("No webhooks yet.").is_visible()

    page.get_by_label("URL").fill("https://hooks.example.org/mechanisms")
    page.get_by_label("Event types").fill("flags.* deploys.promoted")
    page.get_by_label("Description").fill("chat notifications")
    page.get_by_role("button", name="Add webhook").click()
    shown = page.get_by_test_id("new-secret")
    shown.wait_for()
    secret = shown.locator("code").inner_text().strip()
    assert secret.startswith("whsec_")

    row = page.locator("#webhooks tbody tr").first
    assert "https://hooks.example.org/mechanisms" in row.inner_text()
    assert "chat notifications" in row.inner_text()
    assert row.locator("code").all_inner_texts() == ["flags.*", "deploys.promoted"]
    assert row.locator("mark").inner_text() == "active"
    assert page.get_by_label("URL").input_value() == "", "the form is ready for the next one"
    with live.db.transaction(write=False) as session:
        stored = session.execute(select(Webhook)).scalar_one()
        assert stored.secret == secret and stored.event_types == ["flags.*", "deploys.promoted"]

    page.reload()
    assert page.get_by_test_id("new-secret").count() == 0
    assert secret not in page.content(), "the secret is shown only once"

    # Disabling takes effect in place.
    page.locator("#webhooks").get_by_role("button", name="Disable").click()
    page.locator("#webhooks mark", has_text="disabled").wait_for()
    assert page.locator("#webhooks").get_by_role("button", name="Enable").is_visible()
    assert page.console_errors.unexpected() == []


def test_a_webhook_url_the_server_refuses_explains_why(signed_in: Any) -> None:
    page = signed_in("ada", PHONE, path="/events")
    page.get_by_label("URL").fill("ftp://files.example.org/drop")
    page.get_by_role("button", name="Add webhook").click()
    flash = page.locator("#flash")
    flash.wait_for()
    assert flash.inner_text() == "url must be an absolute http or https URL"
    assert page.get_by_label("URL").input_value() == "ftp://files.example.org/drop"
    assert page.get_by_text("No webhooks yet.").is_visible()

    # The next attempt clears the old message.
    page.get_by_label("URL").fill("https://files.example.org/drop")
    page.get_by_role("button", name="Add webhook").click()
    page.get_by_test_id("new-secret").wait_for()
    assert not flash.is_visible()
    assert page.console_errors.unexpected(422) == []


def test_a_dead_delivery_can_be_retried(live: LiveServer, signed_in: Any) -> None:
    delivery_id = _dead_delivery(live)
    page = signed_in("ada")
    attention = page.locator(".attention li")
    assert attention.inner_text().startswith("1 event delivery gave up")
    attention.get_by_role("link").click()
    page.wait_for_url("**/events?status=dead")
    assert page.get_by_test_id("count-dead").inner_text() == "1"

    row = page.locator(f"#delivery-{delivery_id}")
    assert row.get_by_test_id("delivery-status").inner_text() == "dead"
    assert "flags.rolled_back" in row.inner_text()
    assert "HTTP 503" in row.inner_text()
    row.get_by_role("button", name="Retry").click()
    page.locator(f"#delivery-{delivery_id} mark", has_text="pending").wait_for()
    assert page.locator(f"#delivery-{delivery_id}").get_by_role("button", name="Retry").count() == 0

    with live.db.transaction(write=False) as session:
        delivery = session.get(Delivery, delivery_id)
        assert (delivery.status, delivery.attempts) == ("pending", 0)
    page.goto("/")
    assert page.get_by_test_id("attention-empty").is_visible()
    assert page.console_errors.unexpected() == []
