"""Reviews on SQLite and PostgreSQL: comments follow their paragraph across versions,
threads, answers and resolution, meetings with their reading timer, reading load."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput
from mechanisms.docs import reading, registry, reviews
from mechanisms.docs.registry import NewDoc
from tests.docs.conftest import BODY


@pytest.fixture
def doc(run, team, as_user):
    slug = run(
        registry.create, NewDoc(title="Cache", body=BODY, reviewers=["rex"]), as_=as_user("eve")
    ).slug
    run(registry.submit, slug, as_=as_user("eve"))
    return slug


def _state(run, comment_id):
    rows = {c.id: c for c in run(reviews.comments, 1)}
    return rows[comment_id].paragraph, rows[comment_id].anchor_state


def test_comments_follow_their_paragraph_through_versions(run, as_user, doc):
    paras = BODY.split("\n\n")
    impact = paras.index("Pages load in half the time.")
    note = run(reviews.comment, doc, "note", "Measured where?", impact, as_=as_user("rex"))
    gone = run(reviews.comment, doc, "question", "Why not a CDN?", impact - 2, as_=as_user("rex"))
    # A paragraph inserted above, the commented one edited, another one deleted.
    body = BODY.replace("## Why now\n", "## Why now\n\nA new opening paragraph.\n")
    body = body.replace("Pages load in half the time.", "Pages load in half the time on phones.")
    body = body.replace(
        "A bigger database was discarded because it costs four times as much.\n\n", ""
    )
    run(registry.revise, doc, body, as_=as_user("eve"))
    assert _state(run, note.id) == (impact, "changed")  # +1 inserted, -1 deleted
    assert _state(run, gone.id) == (None, "orphaned")
    # An orphaned question still blocks the decision, and says it is outdated.
    blocked = run(lambda ctx: reviews.blockers(ctx, registry.get(ctx, doc)))
    assert any("outdated" in b.message for b in blocked)


def test_threads_answers_and_resolution(run, as_user, doc):
    q = run(reviews.comment, doc, "question", "What is the hit rate?", 1, as_=as_user("rex"))
    run(reviews.reply, q.id, "+1, and the eviction policy?", as_=as_user("pia"))
    with pytest.raises(Conflict, match="no answer yet"):
        run(reviews.resolve, q.id, as_=as_user("rex"))
    with pytest.raises(Forbidden):
        run(reviews.answer, q.id, "90 %", as_=as_user("pia"))
    run(reviews.answer, q.id, "90 %, LRU.", as_=as_user("eve"))
    run(reviews.resolve, q.id, as_=as_user("rex"))
    [thread] = run(lambda ctx: reviews.threads(reviews.comments(ctx, doc)))
    assert [r.kind for r in thread.replies] == ["reply", "answer"]
    assert (thread.root.state, thread.root.answered_by, thread.root.resolved_by) == (
        "resolved",
        "eve",
        "rex",
    )
    concern = run(reviews.comment, doc, "concern", "Stale prices?", as_=as_user("rex"))
    with pytest.raises(InvalidInput, match="only questions are answered"):
        run(reviews.answer, concern.id, "no", as_=as_user("eve"))
    with pytest.raises(InvalidInput, match="paragraphs 0 to"):
        run(reviews.comment, doc, "note", "x", 999, as_=as_user("rex"))
    with pytest.raises(InvalidInput, match="a comment is a"):
        run(reviews.comment, doc, "praise", "x", as_=as_user("rex"))


def test_the_review_queue(run, as_user, doc):
    queue = run(reviews.queue, "rex")
    assert [d.slug for d in queue["to_review"]] == [doc]
    q = run(reviews.comment, doc, "question", "Hit rate?", as_=as_user("rex"))
    assert run(reviews.queue, "rex")["to_review"] == []
    assert [c.id for c, _ in run(reviews.queue, "eve")["questions"]] == [q.id]


def test_a_meeting_reads_silently_for_the_docs_reading_time(run, as_user, doc, clock):
    meeting = run(reading.start_meeting, doc, as_=as_user("eve"))
    words = run(lambda ctx: registry.version(ctx, registry.get(ctx, doc)).words)
    assert meeting.reading_seconds == max(60, -(-words * 15 // 1700) * 60)
    with pytest.raises(Conflict, match="already has a meeting"):
        run(reading.start_meeting, doc, as_=as_user("rex"))
    run(reading.join, meeting.id, as_=as_user("rex"))
    snap = run(lambda ctx: reading.meeting_snapshot(ctx, reading.get_meeting(ctx, meeting.id)))
    assert (
        snap["phase"] == "reading" and snap["reading_remaining_seconds"] == meeting.reading_seconds
    )
    run(reading.finish_reading, meeting.id, as_=as_user("rex"))
    clock.advance(timedelta(seconds=meeting.reading_seconds))
    snap = run(lambda ctx: reading.meeting_snapshot(ctx, reading.get_meeting(ctx, meeting.id)))
    assert snap["phase"] == "discussion"
    assert [(a["username"], bool(a["finished_reading_at"])) for a in snap["attendees"]] == [
        ("eve", False),
        ("rex", True),
    ]
    with pytest.raises(Forbidden):
        run(reading.end_meeting, meeting.id, as_=as_user("rex"))
    run(reading.end_meeting, meeting.id, as_=as_user("eve"))
    assert run(reading.load, "rex").read == [doc]


def test_reading_load_counts_each_doc_once_in_the_iso_week_of_the_persons_zone(
    run, as_user, team, clock
):
    # Monday 2030-01-07 00:30 in Berlin is Sunday 23:30 UTC: a different ISO week in UTC.
    clock.set(datetime(2030, 1, 6, 23, 30, tzinfo=UTC))
    slugs = []
    for i in range(8):
        slugs.append(
            run(registry.create, NewDoc(title=f"Doc {i}", body="# x\n\ny"), as_=as_user("eve")).slug
        )
    for slug in slugs:
        run(reading.record_read, slug, as_=as_user("rex"))
    run(reading.record_read, slugs[0], as_=as_user("rex"))
    berlin = run(reading.load, "rex", date(2030, 1, 7), "Europe/Berlin")
    assert (berlin.week, len(berlin.docs), berlin.as_dict()["band"]) == ("2030-W02", 8, "within")
    utc = run(reading.load, "rex", date(2030, 1, 7), "UTC")
    assert (utc.week, len(utc.docs), utc.as_dict()["band"]) == ("2030-W02", 0, "below")
    with pytest.raises(InvalidInput, match="time zone"):
        run(reading.load, "rex", None, "Mars/Olympus")


def test_the_worker_closes_a_meeting_nobody_ended(db, run, as_user, doc, clock):
    from mechanisms.core.worker import Worker

    meeting = run(reading.start_meeting, doc, as_=as_user("eve"))
    worker = Worker(db, clock=clock)
    clock.advance(timedelta(seconds=meeting.reading_seconds) + timedelta(hours=7))
    worker.tick()
    assert run(reading.get_meeting, meeting.id).ended_at is None
    clock.advance(timedelta(hours=1, seconds=1))
    worker.tick()
    assert run(reading.get_meeting, meeting.id).ended_at == clock.now()
    worker.close()


def test_a_persons_week_is_counted_in_the_zone_they_chose(run, as_user, team, clock):
    clock.set(datetime(2030, 1, 6, 23, 30, tzinfo=UTC))  # Monday 00:30 in Berlin
    slug = run(registry.create, NewDoc(title="Doc", body="# x\n\ny"), as_=as_user("eve")).slug
    run(reading.record_read, slug, as_=as_user("rex"))
    assert run(reading.load, "rex").week == "2030-W01"
    assert run(reading.set_zone, "Europe/Berlin", as_=as_user("rex")) == "Europe/Berlin"
    berlin = run(reading.load, "rex")
    assert (berlin.week, berlin.tz, berlin.read) == ("2030-W02", "Europe/Berlin", [slug])
    with pytest.raises(InvalidInput, match="time zone"):
        run(reading.set_zone, "Moon/Base", as_=as_user("rex"))
