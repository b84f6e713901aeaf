"""The docs editor in Chromium: typing updates the marks and the statistics."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import PHONE, wait_until

pytestmark = pytest.mark.browser


def test_typing_marks_findings_and_updates_the_statistics(signed_in: Any) -> None:
    page = signed_in("vic", path="/docs/editor")
    preview = page.get_by_test_id("doc-preview")
    assert preview.locator("mark.doc-passive").count() >= 1, "the sample is checked on load"

    text = page.get_by_test_id("doc-text")
    text.fill("")
    text.press_sequentially(
        "The plan was approved by many people. I think it is much faster.", delay=5
    )
    wait_until(
        page, "document.querySelector('[data-testid=stat-words]').textContent.trim() === '13'"
    )
    marks = {
        kind: preview.locator(f"mark.doc-{kind}").all_inner_texts()
        for kind in ("passive", "weasel", "hedge", "unquantified")
    }
    assert marks == {
        "passive": ["was approved"],
        "weasel": ["many"],
        "hedge": ["I think"],
        "unquantified": ["much faster"],
    }
    assert page.get_by_test_id("stat-passive").inner_text() == "50 %"
    assert page.get_by_test_id("count-weasel").inner_text() == "1"
    legend = page.get_by_role("list", name="Legend")
    assert "Passive voice" in legend.inner_text()

    text.press("End")
    text.press_sequentially(" We ship on Monday.", delay=5)
    wait_until(
        page, "document.querySelector('[data-testid=stat-words]').textContent.trim() === '17'"
    )
    assert page.get_by_test_id("stat-sentences").inner_text() == "3"
    assert not page.console_errors


def test_typed_markup_stays_text(signed_in: Any) -> None:
    page = signed_in("eve", viewport=PHONE, path="/docs/editor")
    page.evaluate("window.__pwned = false")
    text = page.get_by_test_id("doc-text")
    text.fill("")
    # Unquoted: a quoted word is a mention, which the weasel finder leaves alone.
    text.press_sequentially('It is very <img src=x onerror="window.__pwned=true"> good.', delay=2)
    wait_until(
        page,
        "document.querySelector('[data-testid=doc-preview]').textContent.includes('<img src=x')",
    )
    preview = page.get_by_test_id("doc-preview")
    assert preview.locator("mark.doc-weasel").all_inner_texts() == ["very"]
    assert preview.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is False
