"""The docs pages on both databases: rendered Markdown that never passes HTML through,
comments in the margin by paragraph, outdated threads, diffs, queue, load; a viewer is
refused every form; and the demo tells its story."""

from __future__ import annotations

import pytest

from mechanisms import demo, modules
from mechanisms.docs import reading, registry, reviews
from mechanisms.docs.registry import Filters, NewDoc
from tests.docs.conftest import BODY

EVIL = """# Title <script>alert(1)</script>

<img src=x onerror=alert(2)>

[click](javascript:alert(3)) and <a href="javascript:alert(4)">raw</a>

Plain paragraph with **bold**.
"""


def _doc(run, as_user, body=BODY, **fields):
    doc = run(
        registry.create,
        NewDoc(title=fields.pop("title", "Cache checkout"), body=body, **fields),
        as_=as_user("eve"),
    )
    return doc.slug


def test_markdown_is_rendered_and_html_in_a_doc_is_never_passed_through(client, team, run, as_user):
    slug = _doc(run, as_user, body=EVIL)
    run(registry.submit, slug, as_=as_user("eve"))
    run(reviews.comment, slug, "note", "<script>alert(5)</script>", 3, as_=as_user("rex"))
    page = client.get(f"/docs/{slug}", headers=team.header("vic"))
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img" not in page.text
    assert 'href="javascript:' not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in page.text
    assert "<strong>bold</strong>" in page.text


def test_comments_sit_beside_their_paragraph_and_gone_ones_are_outdated(client, team, run, as_user):
    slug = _doc(run, as_user, reviewers=["rex"])
    run(registry.submit, slug, as_=as_user("eve"))
    run(reviews.comment, slug, "question", "Which catalog calls?", 4, as_=as_user("rex"))
    run(reviews.comment, slug, "concern", "Four times is a guess.", 6, as_=as_user("rex"))
    run(
        registry.revise,
        slug,
        BODY.replace(
            "A bigger database was discarded because it costs four times as much.\n\n", ""
        ),
        as_=as_user("eve"),
    )
    page = client.get(f"/docs/{slug}", headers=team.header("vic")).text
    margin = page.split('data-paragraph="4"')[1].split("data-paragraph=")[0]
    assert "Which catalog calls?" in margin
    outdated = page.split('data-testid="outdated"')[1]
    assert "Four times is a guess." in outdated and "A bigger database" in outdated
    assert "review_missing" not in page and "Ready to decide" not in page  # rex asked: reviewed
    history = client.get(f"/docs/{slug}/history?from=1&to=2&view=side", headers=team.header("vic"))
    assert history.status_code == 200 and 'class="d-delete"' in history.text
    for view in ("inline", "unified"):
        assert (
            client.get(f"/docs/{slug}/history?view={view}", headers=team.header("vic")).status_code
            == 200
        )
    assert (
        client.get(f"/docs/{slug}/history?view=bogus", headers=team.header("vic")).status_code
        == 422
    )


def test_registry_filters_queue_and_load_pages(client, team, run, as_user):
    slug = _doc(run, as_user, reviewers=["leo"], tags=["checkout"])
    run(registry.submit, slug, as_=as_user("eve"))
    listing = client.get(
        "/docs?q=catalog&status=in_review&tag=checkout", headers=team.header("vic")
    )
    assert f'data-doc="{slug}"' in listing.text
    rows = client.get(
        "/docs?q=nothing-matches",
        headers={**team.header("vic"), "HX-Request": "true", "HX-Target": "doc-rows"},
    )
    assert "No doc matches." in rows.text and "<html" not in rows.text
    queue = client.get("/docs/queue", headers=team.header("leo"))
    assert slug in queue.text.split('data-testid="to-review"')[1]
    run(reading.record_read, slug, as_=as_user("leo"))
    load = client.get("/docs/load?tz=Europe/Berlin", headers=team.header("vic"))
    assert 'data-person="leo"' in load.text and "below" in load.text
    assert client.get("/docs/load?tz=Nowhere/Land", headers=team.header("vic")).status_code == 422
    assert client.get("/docs/no-such-doc", headers=team.header("vic")).status_code == 404


@pytest.mark.parametrize(
    "path, form",
    [
        ("/docs/new", {"title": "Mine"}),
        ("/docs/{slug}/comments", {"kind": "note", "body": "x"}),
        ("/docs/{slug}/review", {"no_questions": "true"}),
        ("/docs/{slug}/transition", {"action": "withdraw"}),
        ("/docs/{slug}/decide", {"outcome": "accepted", "door": "two_way"}),
        ("/docs/{slug}/supersede", {"successor": "other"}),
        ("/docs/{slug}/revise", {"body": "# changed"}),
        ("/docs/{slug}/read", {}),
        ("/docs/{slug}/meetings", {}),
        ("/docs/{slug}/comments/1/answer", {"body": "x"}),
        ("/docs/{slug}/comments/1/reply", {"body": "x"}),
        ("/docs/{slug}/comments/1/resolve", {}),
        ("/docs/meetings/1/join", {}),
        ("/docs/meetings/1/read", {}),
        ("/docs/meetings/1/end", {}),
        ("/docs/load/zone", {"tz": "Europe/Berlin"}),
    ],
)
def test_a_viewer_is_refused_every_form(client, team, run, as_user, path, form):
    slug = _doc(run, as_user)
    run(registry.submit, slug, as_=as_user("eve"))
    run(reviews.comment, slug, "question", "q", as_=as_user("rex"))
    run(reading.start_meeting, slug, as_=as_user("eve"))
    response = client.post(path.format(slug=slug), data=form, headers=team.header("vic"))
    assert response.status_code == 403, response.text[:300]


def test_the_demo_tells_the_docs_story(db, clock, run):
    modules.import_all()
    assert demo.seed(db, clock).created
    by_status = {}
    for doc, _ in run(registry.list_docs, Filters(limit=500)):
        by_status.setdefault(doc.status, []).append(doc.slug)
    assert set(by_status) == {"draft", "in_review", "accepted", "rejected", "superseded"}
    assert by_status["superseded"] == ["weekly-on-call-rotation"]
    blocked = run(
        lambda ctx: reviews.blockers(ctx, registry.get(ctx, "cache-the-catalog-in-checkout"))
    )
    assert [b.code for b in blocked] == ["unanswered_question", "review_missing"]
    sun = run(lambda ctx: registry.snapshot(ctx, registry.get(ctx, "follow-the-sun-on-call")))
    assert sun["supersedes"] == "weekly-on-call-rotation"
    bands = {x.username: x.as_dict()["band"] for x in run(reading.loads)}
    assert (bands["lena"], bands["oliver"], bands["sam"], bands["vera"]) == (
        "above",
        "within",
        "below",
        "below",
    )


def test_a_body_that_opens_with_the_title_shows_it_once(client, team, run, as_user):
    body = BODY.replace("# Cache the checkout page", "# Cache checkout")
    slug = _doc(run, as_user, body=body, title="Cache checkout")
    page = client.get(f"/docs/{slug}", headers=team.header("vic")).text
    assert page.count("<h1") == 1 and "<h1>Cache checkout</h1>" in page
    # Paragraphs keep their numbers, so comments stay anchored where they were.
    assert 'data-paragraph="0"' not in page and 'data-paragraph="1"' in page
    # A first heading that says something else than the title is the doc's own text.
    other = _doc(run, as_user, title="Checkout caching")
    page = client.get(f"/docs/{other}", headers=team.header("vic")).text
    assert page.count("<h1") == 2 and "<h1>Cache the checkout page</h1>" in page
