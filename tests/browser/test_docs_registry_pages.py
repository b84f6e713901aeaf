"""The docs pages in Chromium: leo asks a question in the margin of eve's doc, the decision
is refused until eve answers it, then eve decides; a review meeting's reading timer counts
down and hands over to discussion; vic, a viewer, sees the doc and is refused every form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal
from mechanisms.docs import reading, registry
from mechanisms.docs.registry import NewDoc
from tests.browser.conftest import PHONE, LiveServer, wait_until
from tests.browser.test_flags_support import no_sideways_scroll
from tests.docs.conftest import BODY

pytestmark = pytest.mark.browser


def _as(live: LiveServer, who: str, fn: Any, *args: Any, at: datetime | None = None) -> Any:
    with live.db.transaction() as session:
        user = accounts.find_user(session, who)
        principal = Principal(user.id, user.username, "session", is_site_admin=user.is_site_admin)
        return fn(Ctx(session, principal, at or datetime.now(UTC)), *args)


def _doc_in_review(live: LiveServer, body: str = BODY) -> str:
    doc = _as(
        live, "eve", registry.create, NewDoc(title="Cache checkout", body=body, reviewers=["leo"])
    )
    _as(live, "eve", registry.submit, doc.slug)
    return doc.slug


def test_question_in_the_margin_blocks_the_decision_until_it_is_answered(
    live, signed_in, shots_dir
):
    slug = _doc_in_review(live)
    leo = signed_in("leo", path=f"/docs/{slug}")
    paragraph = leo.locator("[data-paragraph='2']")
    paragraph.locator("summary", has_text="Comment on this paragraph").click()
    paragraph.get_by_label("Comment").fill("What is the cache's hit rate?")
    paragraph.get_by_role("button", name="Add").click()
    leo.wait_for_selector("[data-paragraph='2'] [data-kind='question'][data-state='open']")
    assert "hit rate" in leo.get_by_test_id("blockers").inner_text()

    eve = signed_in("eve", path=f"/docs/{slug}")
    eve.get_by_test_id("decide-form").get_by_role("button", name="Decide").click()
    eve.wait_for_selector("#flash:not([hidden])")
    assert "cannot be decided yet" in eve.locator("#flash").inner_text()
    assert "hit rate" in eve.locator("#flash").inner_text()
    thread = eve.locator("[data-paragraph='2'] [data-kind='question']")
    thread.locator("summary", has_text="Answer").click()
    thread.get_by_label("Answer").fill("About 90 % in the load test.")
    thread.get_by_role("button", name="Answer").click()
    eve.wait_for_selector("[data-paragraph='2'] [data-state='answered']")
    assert "Ready to decide" in eve.get_by_test_id("blockers").inner_text()
    eve.screenshot(path=str(shots_dir / "docs-doc-answered.png"), full_page=True)
    eve.get_by_test_id("decide-form").get_by_role("button", name="Decide").click()
    eve.wait_for_selector("[data-status='accepted']")
    assert eve.console_errors.unexpected(409) == []


def test_the_meeting_timer_counts_down_from_the_reading_time(live, signed_in, shots_dir):
    slug = _doc_in_review(live, body="# Tiny\n\nOne short paragraph to read.\n")
    eve = signed_in("eve", viewport=PHONE, path=f"/docs/{slug}")
    eve.get_by_role("button", name="Start a review meeting").click()
    eve.wait_for_url("**/docs/meetings/*")
    timer = eve.get_by_test_id("timer")
    first = timer.inner_text()
    assert first in ("1:00", "0:59")  # a few words: the one-minute minimum
    wait_until(eve, f"document.querySelector('[data-testid=timer]').textContent !== '{first}'")
    assert eve.get_by_test_id("meeting").get_attribute("data-phase") == "reading"
    assert eve.get_by_test_id("timer-done").is_hidden()
    eve.get_by_role("button", name="I have finished reading").click()
    eve.wait_for_selector("[data-attendee='eve'] .q-resolved")
    no_sideways_scroll(eve)
    eve.screenshot(path=str(shots_dir / "docs-meeting-phone.png"), full_page=True)
    assert eve.console_errors == []


def test_when_reading_time_is_over_the_timer_hands_over_to_discussion(live, signed_in):
    slug = _doc_in_review(live, body="# Tiny\n\nOne short paragraph to read.\n")
    # Started 52 seconds ago: eight seconds of reading are left.
    started = datetime.now(UTC) - timedelta(seconds=52)
    meeting = _as(live, "eve", reading.start_meeting, slug, at=started)
    leo = signed_in("leo", path=f"/docs/meetings/{meeting.id}")
    assert leo.get_by_test_id("timer-done").is_hidden()
    leo.wait_for_selector("[data-testid=timer-done]:not([hidden])", timeout=15_000)
    assert leo.get_by_test_id("timer").inner_text() == "0:00"
    assert leo.get_by_test_id("meeting").get_attribute("data-phase") == "discussion"


def test_a_viewer_reads_the_doc_and_every_form_is_refused(live, signed_in):
    slug = _doc_in_review(live)
    vic = signed_in("vic", path=f"/docs/{slug}")
    assert "Cache checkout" in vic.locator(".doc-head h1").inner_text()
    paragraph = vic.locator("[data-paragraph='2']")
    paragraph.locator("summary", has_text="Comment on this paragraph").click()
    paragraph.get_by_label("Comment").fill("Can I?")
    paragraph.get_by_role("button", name="Add").click()
    vic.wait_for_selector("#flash:not([hidden])")
    assert "engineer role" in vic.locator("#flash").inner_text()
    assert vic.console_errors.unexpected(403) == []
