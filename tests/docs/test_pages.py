"""The editor page: findings marked in the text, statistics beside it, everything the
user typed escaped."""

from __future__ import annotations

import re


def test_the_editor_shows_a_checked_sample(client, org) -> None:
    page = client.get("/docs/editor", headers=org.header("vic"))
    assert page.status_code == 200
    assert 'hx-trigger="keyup changed delay:500ms' in page.text
    assert 'class="doc-hl doc-passive"' in page.text
    assert 'data-testid="stat-words"' in page.text


def test_the_check_fragment_marks_findings_by_kind(client, org) -> None:
    answer = client.post(
        "/docs/editor/check",
        data={"text": "There are many plans. It was written by me.", "template": "none"},
        headers=org.header("eve"),
    )
    assert answer.status_code == 200
    assert "<html" not in answer.text, "a fragment, not a page"
    kinds = set(re.findall(r'class="doc-hl doc-([a-z-]+)"', answer.text))
    assert kinds == {"there-is", "weasel", "passive"}
    assert re.search(r'data-testid="stat-words">9<', answer.text)
    assert re.search(r'data-testid="count-weasel">1<', answer.text)


def test_what_the_user_typed_is_escaped(client, org) -> None:
    # "very" unquoted: the weasel finder leaves quoted words alone (a mention, not a use).
    attack = 'It was very "odd" <script>alert(1)</script> <img src=x onerror=alert(2)> done.'
    answer = client.post(
        "/docs/editor/check", data={"text": attack, "template": "none"}, headers=org.header("eve")
    )
    assert answer.status_code == 200
    assert "<script>" not in answer.text and "<img" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert "onerror=alert(2)&gt;" in answer.text
    # Finding text shown in a title attribute is escaped too.
    assert 'title="weasel: ' in answer.text


def test_empty_text_asks_for_some(client, org) -> None:
    answer = client.post("/docs/editor/check", data={"text": "  "}, headers=org.header("eve"))
    assert answer.status_code == 200
    assert 'data-testid="doc-empty"' in answer.text


def test_anonymous_visitors_are_sent_to_sign_in(client, org) -> None:
    answer = client.get("/docs/editor", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")
