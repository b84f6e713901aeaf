"""A flag's history (versions with readable diffs, restoring one) and the segments page
(a definition the service refuses is shown again with the reason)."""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms.flags import service
from tests.browser.conftest import LiveServer
from tests.browser.test_flags_support import (
    APP,
    AT_ONCE,
    FLAG,
    accept_dialogs,
    call,
    person,
    seed_shop,
)

pytestmark = pytest.mark.browser
WITH_STAFF = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "rules": [
        {
            "id": "staff",
            "clauses": [{"attribute": "key", "op": "segment_match", "values": ["staff"]}],
            "serve": {"variant": "on"},
        }
    ],
    "fallthrough": {"variant": "off"},
}


def test_history_shows_diffs_and_restores_a_version(live: LiveServer, signed_in: Any) -> None:
    seed_shop(live)
    call(live, service.set_segment, APP, "staff", {"included": ["ada"]})
    call(
        live,
        service.set_config,
        APP,
        FLAG,
        "gamma",
        WITH_STAFF,
        strategy=AT_ONCE,
        comment="staff first",
        as_=person(live, "eve"),
    )
    page = signed_in("eve", path=f"/flags/{APP}/{FLAG}/history?env=gamma")
    versions = page.get_by_test_id("version")
    assert versions.count() == 2
    newest = versions.first
    assert "Version 2" in newest.inner_text() and "live" in newest.inner_text()
    assert "eve" in newest.inner_text() and "staff first" in newest.inner_text()
    added = newest.locator(".diff .add").all_inner_texts()
    assert any('"segment_match"' in line for line in added), added

    accept_dialogs(page)
    versions.nth(1).get_by_role("button", name="Restore").click()
    page.wait_for_url("**done=restored*")
    assert "Version 1 was restored in gamma" in page.get_by_test_id("notice").inner_text()
    newest = call(live, service.versions, APP, FLAG, "gamma")[0]
    assert newest.number == 3 and newest.comment == "restore version 1"
    assert newest.config["rules"] == []

    # The segment page says who uses a segment; a refused definition keeps what was typed.
    page.goto(f"/flags/{APP}/-/segments")
    staff = page.locator('details[data-segment="staff"]')
    assert "used by" in staff.inner_text()
    new = page.locator(".panel").get_by_test_id("segment-form")
    new.get_by_label("Key", exact=True).fill("testers")
    new.get_by_label("Definition").fill('{"included": "not a list"}')
    new.get_by_role("button", name="Create segment").click()
    error = page.get_by_test_id("segment-error")
    error.wait_for()
    assert "included" in error.inner_text()
    form = page.locator(".panel").get_by_test_id("segment-form")
    assert form.get_by_label("Key", exact=True).input_value() == "testers"
    assert form.get_by_label("Definition").input_value() == '{"included": "not a list"}'
    form.get_by_label("Definition").fill('{"included": ["user-7"]}')
    form.get_by_role("button", name="Create segment").click()
    page.locator('details[data-segment="testers"]').wait_for()
    assert [s.key for s in call(live, service.list_segments, APP)] == ["staff", "testers"]
    assert page.console_errors.unexpected(422) == []
