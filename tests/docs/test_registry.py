"""The registry's services on SQLite and PostgreSQL: create, revise, statuses, decide with
every reason it is refused, supersede both ways, upload and sync, search, audit and events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput
from mechanisms.core.tables import AuditRecord, Event
from mechanisms.docs import registry, reviews
from mechanisms.docs.registry import Changes, Filters, NewDoc
from mechanisms.docs.tables import Document, DocVersion
from tests.docs.conftest import BODY


def _new(run, as_user, who="eve", **fields):
    fields.setdefault("title", "Cache the checkout page")
    fields.setdefault("body", BODY)
    doc = run(registry.create, NewDoc(**fields), as_=as_user(who))
    return doc.slug


def _events(db, prefix="docs."):
    with db.transaction(write=False) as session:
        return [
            e.type
            for e in session.execute(
                select(Event).where(Event.type.like(prefix + "%")).order_by(Event.id)
            ).scalars()
        ]


def test_a_doc_from_the_default_template_has_every_section(db, run, team, as_user):
    slug = _new(run, as_user, title="Move search to its own cluster", body=None)
    with db.transaction(write=False) as session:
        body = session.execute(select(DocVersion.body)).scalar_one()
    for section in (
        "Why now",
        "Components affected and how",
        "Alternatives considered",
        "Customer impact",
        "Decision",
    ):
        assert f"## {section}" in body
    assert "one-way door" in body and "two-way door" in body
    assert slug == "move-search-to-its-own-cluster"


def test_a_template_without_sections_and_a_duplicate_slug_are_refused_and_write_nothing(
    db, run, team, as_user
):
    with pytest.raises(InvalidInput, match="no sections"):
        run(registry.create, NewDoc(title="X", template="just text"), as_=as_user("eve"))
    _new(run, as_user, slug="cache")
    with pytest.raises(Conflict, match="taken"):
        _new(run, as_user, slug="cache", title="Another")
    with pytest.raises(InvalidInput, match="NUL"):
        _new(run, as_user, title="Nul", body="a\x00b")
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(Document)).scalar_one() == 1


def test_a_viewer_writes_nothing(run, team, as_user):
    with pytest.raises(Forbidden):
        _new(run, as_user, who="vic")


def test_revising_makes_versions_with_diffs_and_identical_text_makes_none(run, team, as_user):
    slug = _new(run, as_user)
    assert run(registry.revise, slug, BODY, as_=as_user("eve")) is None
    run(
        registry.revise,
        slug,
        BODY.replace("half the time", "a third of the time"),
        note="numbers",
        as_=as_user("eve"),
    )
    diff = run(registry.diff, slug, 1, 2)
    assert "-Pages load in half the time." in diff["unified"]
    assert "+Pages load in a third of the time." in diff["unified"]
    assert [r.kind for r in diff["rows"] if r.kind != "equal"] == ["replace"]
    assert [v.number for v in run(registry.versions, slug)] == [1, 2]
    with pytest.raises(Forbidden):
        run(registry.revise, slug, "# other", as_=as_user("rex"))


def test_the_status_machine_refuses_what_it_does_not_allow_with_409(run, team, as_user):
    slug = _new(run, as_user)
    with pytest.raises(Conflict, match="cannot withdraw") as refused:
        run(registry.withdraw, slug, as_=as_user("eve"))
    assert refused.value.status == 409 and refused.value.details["allowed"] == ["submit"]
    with pytest.raises(Conflict, match="cannot be decided"):
        run(registry.decide, slug, "accepted", "two_way", as_=as_user("eve"))
    run(registry.submit, slug, as_=as_user("eve"))
    run(registry.decide, slug, "accepted", "two_way", as_=as_user("eve"))
    with pytest.raises(Conflict, match="is a record"):
        run(registry.revise, slug, "# new text", as_=as_user("eve"))
    with pytest.raises(Conflict, match="accepted cannot submit"):
        run(registry.submit, slug, as_=as_user("eve"))


def test_decide_names_every_reason_it_is_refused(run, team, as_user):
    slug = _new(run, as_user, reviewers=["rex", "pia"], owners=["eve", "leo"])
    run(registry.submit, slug, as_=as_user("eve"))
    q = run(
        reviews.comment, slug, "question", "What is the cache's hit rate?", 2, as_=as_user("rex")
    )
    with pytest.raises(Conflict) as refused:
        run(registry.decide, slug, "accepted", "one_way", as_=as_user("leo"))
    reasons = refused.value.details["reasons"]
    assert [r["code"] for r in reasons] == ["unanswered_question", "review_missing"]
    assert reasons[0]["ref"] == q.id and reasons[1]["ref"] == "pia"
    assert "hit rate" in refused.value.message and "pia" in refused.value.message
    # rex's question counts as his review; answering it unblocks; pia says she has none.
    with pytest.raises(Forbidden):
        run(reviews.answer, q.id, "About 90 %.", as_=as_user("pia"))
    run(reviews.answer, q.id, "About 90 %.", as_=as_user("eve"))
    run(reviews.review, slug, no_questions=True, as_=as_user("pia"))
    with pytest.raises(Forbidden):
        run(registry.decide, slug, "accepted", "one_way", as_=as_user("rex"))
    doc = run(registry.decide, slug, "accepted", "one_way", "ship it", as_=as_user("leo"))
    assert (doc.status, doc.door, doc.decided_by) == ("accepted", "one_way", "leo")


def test_an_empty_review_is_refused(run, team, as_user):
    slug = _new(run, as_user, reviewers=["rex"])
    run(registry.submit, slug, as_=as_user("eve"))
    with pytest.raises(InvalidInput, match="at least one question"):
        run(reviews.review, slug, no_questions=False, as_=as_user("rex"))


def test_supersede_links_both_ways(run, team, as_user):
    old = _new(run, as_user, title="Old cache")
    run(registry.submit, old, as_=as_user("eve"))
    run(registry.decide, old, "accepted", "two_way", as_=as_user("eve"))
    new = _new(run, as_user, title="New cache")
    run(registry.supersede, old, new, as_=as_user("eve"))
    assert run(lambda ctx: registry.snapshot(ctx, registry.get(ctx, old)))["superseded_by"] == new
    assert run(lambda ctx: registry.snapshot(ctx, registry.get(ctx, new)))["supersedes"] == old
    with pytest.raises(Conflict, match="superseded cannot supersede"):
        run(registry.supersede, old, new, as_=as_user("eve"))


def test_every_change_is_audited_and_announced(db, run, team, as_user):
    slug = _new(run, as_user, reviewers=["rex"])
    run(registry.submit, slug, as_=as_user("eve"))
    q = run(reviews.comment, slug, "question", "Why now?", 0, as_=as_user("rex"))
    run(reviews.answer, q.id, "Peak season.", as_=as_user("eve"))
    run(registry.decide, slug, "rejected", as_=as_user("eve"))
    assert _events(db) == [
        "docs.created",
        "docs.submitted",
        "docs.comment_added",
        "docs.comment_added",
        "docs.question_answered",
        "docs.decided",
    ]
    with db.transaction(write=False) as session:
        actions = list(
            session.execute(
                select(AuditRecord.action)
                .where(AuditRecord.action.like("docs.%"))
                .order_by(AuditRecord.seq)
            ).scalars()
        )
    assert actions == [e for e in _events(db)]


FILE = b"""---
id: adr-0001
title: Use PostgreSQL for scale-out
tags: [storage, database]
owners: [eve]
reviewers: [rex]
---
# Use PostgreSQL for scale-out

## Why now

SQLite cannot serve many replicas.
"""


def test_upload_and_sync_upsert_by_front_matter_id_and_are_idempotent(run, team, as_user):
    files = [
        ("decisions/0001.md", FILE),
        ("decisions/0002.md", b"# Rotate on-call weekly\n\n## Why now\n\nBurnout.\n"),
    ]
    first = run(registry.sync, files, as_=as_user("eve"))
    assert (len(first.created), first.updated, first.unchanged) == (2, [], [])
    again = run(registry.sync, files, as_=as_user("eve"))
    assert (again.created, again.updated, sorted(again.unchanged)) == (
        [],
        [],
        sorted(first.created),
    )
    changed = run(
        registry.sync,
        [("moved/elsewhere.md", FILE.replace(b"many replicas", b"many, many replicas"))],
        as_=as_user("eve"),
    )
    assert changed.updated == ["use-postgresql-for-scale-out"]
    doc = run(lambda ctx: registry.snapshot(ctx, registry.get(ctx, "use-postgresql-for-scale-out")))
    assert (doc["version"], doc["tags"], doc["reviewers"], doc["key"]) == (
        2,
        ["database", "storage"],
        ["rex"],
        "adr-0001",
    )


def test_bad_uploads_refuse_the_whole_sync(db, run, team, as_user):
    with pytest.raises(InvalidInput, match="bad.md.*not UTF-8"):
        run(registry.sync, [("a.md", FILE), ("bad.md", b"# Caf\xe9\n")], as_=as_user("eve"))
    with pytest.raises(InvalidInput, match="not valid YAML"):
        run(registry.upload, b"---\nid: [\n---\n# x\n", "x.md", as_=as_user("eve"))
    with db.transaction(write=False) as session:
        assert session.execute(select(func.count()).select_from(Document)).scalar_one() == 0


def test_search_ranks_by_relevance_and_filters_combine(run, team, as_user, clock):
    _new(run, as_user, title="Cache the checkout page", tags=["checkout"])
    clock.advance(timedelta(minutes=1))
    _new(
        run,
        as_user,
        title="Shard the search index",
        body="# Shard the search index\n\nSearch latency; the checkout page is untouched.\n",
        tags=["search"],
    )
    clock.advance(timedelta(minutes=1))
    _new(
        run,
        as_user,
        who="rex",
        title="Rotate on-call",
        body="# Rotate on-call\n\nWeekly rotations.\n",
    )

    def slugs(**flt):
        return [d.slug for d, _ in run(registry.list_docs, Filters(**flt))]

    assert slugs(q="checkout") == ["cache-the-checkout-page", "shard-the-search-index"]
    assert slugs(q="checkout -search") == ["cache-the-checkout-page"]
    assert slugs(q='"checkout page is untouched"') == ["shard-the-search-index"]
    assert slugs(q="rotations") == ["rotate-on-call"]  # stemmed: rotation(s)
    assert slugs(q="nothing-like-this") == []
    assert slugs(tag="search") == ["shard-the-search-index"]
    assert slugs(author="rex") == ["rotate-on-call"]
    assert slugs() == ["rotate-on-call", "shard-the-search-index", "cache-the-checkout-page"]
    with pytest.raises(InvalidInput, match="unknown status"):
        slugs(status="maybe")


def test_links_are_checked_against_their_mechanism(run, team, as_user):
    slug = _new(run, as_user, links=[("roadmap", "RM-12")])
    with pytest.raises(InvalidInput, match="names nothing"):
        run(registry.link, slug, "deploy", "no-such-service", as_=as_user("eve"))
    with pytest.raises(InvalidInput, match="unknown link kind"):
        run(registry.link, slug, "jira", "X-1", as_=as_user("eve"))
    with pytest.raises(Conflict):
        run(registry.link, slug, "roadmap", "RM-12", as_=as_user("eve"))
    run(registry.update, slug, Changes(tags=["Checkout", "perf"]), as_=as_user("eve"))
    snap = run(lambda ctx: registry.snapshot(ctx, registry.get(ctx, slug)))
    assert snap["tags"] == ["checkout", "perf"] and snap["links"] == [
        {"kind": "roadmap", "ref": "RM-12"}
    ]


def test_a_file_without_a_title_is_refused(run, team, as_user):
    with pytest.raises(InvalidInput, match="no title"):
        run(registry.upload, b"{}", "notes.md", as_=as_user("eve"))
