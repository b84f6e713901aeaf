"""The flag editor: build a rule with a condition and a split, save it, see it live; a
split that does not add up to 100 is refused next to the split, keeping what was typed."""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms.flags import service
from tests.browser.conftest import LiveServer
from tests.browser.test_flags_support import APP, AT_ONCE, FLAG, call, person, seed_shop

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
EDIT = f"/flags/{APP}/{FLAG}/beta/edit"


def _add_rule_with_split(page: Any, first: str, second: str) -> Any:
    page.get_by_role("button", name="+ Add rule").click()
    rule = page.get_by_test_id("rule-editor").first
    rule.wait_for()
    rule.get_by_label("Rule 1 condition 1 attribute").fill("country")
    rule.get_by_label("Rule 1 condition 1 operator").select_option("in")
    rule.get_by_label("Rule 1 condition 1 values").fill("DE\nFR")
    rule.get_by_label("Percentage split").check()
    rule.get_by_label("Rule 1 serves: split row 1 variant").select_option("on")
    rule.get_by_label("Rule 1 serves: split row 1 percent").fill(first)
    rule.get_by_label("Rule 1 serves: split row 2 variant").select_option("off")
    rule.get_by_label("Rule 1 serves: split row 2 percent").fill(second)
    return rule


def test_a_rule_with_a_split_is_saved_and_shown_live(live: LiveServer, signed_in: Any) -> None:
    seed_shop(live)
    page = signed_in("eve", path=f"/flags/{APP}/{FLAG}")
    page.get_by_test_id("edit-beta").click()
    page.wait_for_url(f"**{EDIT}")

    rule = _add_rule_with_split(page, "30", "70")
    assert rule.locator("[data-sum]").inner_text() == "Sum: 100 %"
    page.get_by_label("Strategy").select_option(AT_ONCE)
    page.get_by_label("Comment").fill("Germany and France first")
    page.get_by_test_id("save").click()

    page.wait_for_url(f"**/flags/{APP}/{FLAG}?done=saved*")
    assert "version 2" in page.get_by_test_id("notice").inner_text()
    beta = page.locator("#env-beta")
    assert beta.get_by_test_id("live-version").inner_text() == "version 2 live"
    shown = beta.locator('[data-rule-id="rule-1"]')
    assert "country" in shown.inner_text() and "is one of" in shown.inner_text()
    assert shown.locator("code.val").all_inner_texts() == ["DE", "FR"]
    legend = shown.get_by_test_id("split").inner_text()
    assert "on 30 %" in legend and "off 70 %" in legend
    # Gamma is untouched.
    assert page.locator("#env-gamma").get_by_test_id("live-version").inner_text() == (
        "version 1 live"
    )

    stored = call(live, service.versions, APP, FLAG, "beta")[0]
    assert stored.number == 2 and stored.comment == "Germany and France first"
    assert stored.config["rules"][0]["clauses"][0] == {
        "attribute": "country",
        "op": "in",
        "values": ["DE", "FR"],
        "negate": False,
    }
    assert [p["percent"] for p in stored.config["rules"][0]["serve"]["split"]] == [30, 70]
    assert page.console_errors.unexpected() == []


def test_a_split_that_does_not_add_up_is_refused_and_kept(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed_shop(live)
    page = signed_in("eve", path=EDIT)
    rule = _add_rule_with_split(page, "30", "60")
    total = rule.locator("[data-sum]")
    assert total.inner_text() == "Sum: 90 %"
    assert "bad" in total.get_attribute("class"), "the running sum shows the split is off"
    page.get_by_test_id("save").click()

    error = page.get_by_test_id("editor-error")
    error.wait_for()
    assert "split percentages must sum to 100 (they sum to 90)" in error.inner_text()
    assert "Rule 1" in error.inner_text()
    rule = page.get_by_test_id("rule-editor").first
    beside = rule.get_by_test_id("field-error")
    assert "sum to 90" in beside.inner_text(), "the reason is shown next to the split"
    # What was typed is still there.
    assert rule.get_by_label("Rule 1 condition 1 attribute").input_value() == "country"
    assert rule.get_by_label("Rule 1 condition 1 values").input_value() == "DE\nFR"
    assert rule.get_by_label("Rule 1 serves: split row 1 percent").input_value() == "30"
    assert rule.get_by_label("Rule 1 serves: split row 2 percent").input_value() == "60"
    assert rule.get_by_label("Percentage split").is_checked()
    page.screenshot(path=str(shots_dir / "flags-editor-error-desktop.png"), full_page=True)
    assert [v.number for v in call(live, service.versions, APP, FLAG, "beta")] == [1]

    # Fixing the share saves the same form.
    rule.get_by_label("Rule 1 serves: split row 2 percent").fill("70")
    assert rule.locator("[data-sum]").inner_text() == "Sum: 100 %"
    page.get_by_label("Strategy").select_option(AT_ONCE)
    page.get_by_test_id("save").click()
    page.wait_for_url(f"**/flags/{APP}/{FLAG}?done=saved*")
    assert page.console_errors.unexpected(422) == []


def test_rows_are_added_moved_and_removed_without_losing_input(
    live: LiveServer, signed_in: Any
) -> None:
    seed_shop(live)
    page = signed_in("eve", path=EDIT)
    page.get_by_role("button", name="+ Add rule").click()
    page.get_by_label("Rule 1 condition 1 attribute").fill("plan")
    page.get_by_label("Rule 1 condition 1 values").fill("pro")
    page.get_by_role("button", name="+ Add rule").click()
    page.get_by_label("Rule 2 condition 1 attribute").fill("email")
    page.get_by_label("Rule 2 condition 1 operator").select_option("ends_with")
    page.get_by_label("Rule 2 condition 1 values").fill("@acme.test")
    page.get_by_role("button", name="Move rule 2 up").click()
    expect(page.get_by_label("Rule 1 condition 1 attribute")).to_have_value("email")
    expect(page.get_by_label("Rule 2 condition 1 attribute")).to_have_value("plan")
    page.get_by_role("button", name="Remove rule 2").click()
    page.get_by_label("Rule 2 condition 1 attribute").wait_for(state="detached")
    assert page.get_by_test_id("rule-editor").count() == 1
    assert page.get_by_label("Rule 1 condition 1 values").input_value() == "@acme.test"

    # A leader's pending change request in production waits for another person.
    call(
        live,
        service.set_config,
        APP,
        FLAG,
        "prod",
        {**call(live, service.versions, APP, FLAG, "prod")[0].config, "enabled": False},
        comment="switch it off in production",
        as_=person(live, "leo"),
    )
    # Eve's home page asks her for it; the link leads to the request.
    page.goto("/")
    waiting = page.locator(".attention li", has_text=f"{APP}/{FLAG}")
    assert "switch it off in production" in waiting.inner_text()
    waiting.get_by_role("link").click()
    page.wait_for_url(f"**/flags/{APP}/{FLAG}#cr-*")
    request = page.get_by_test_id("change-request")
    assert "switch it off in production" in request.inner_text()
    request.get_by_role("button", name="Approve").click()
    page.wait_for_url("**done=approved*")
    assert page.get_by_test_id("change-request").count() == 0
    prod = call(live, service.versions, APP, FLAG, "prod")[0]
    assert prod.number == 2 and prod.config["enabled"] is False
    assert page.console_errors.unexpected() == []
