"""Reading: who read which doc, review meetings that start with silent reading sized by
the doc's reading time, and each person's weekly reading load against the 7–9 docs norm."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mechanisms.core import accounts, audit, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, NotFound, StaleState
from mechanisms.docs import access, document, reviews
from mechanisms.docs.tables import Attendee, Document, Meeting, Read, ReaderZone, Review

# The norm: a person reads and reviews 7 to 9 docs a week.
NORM = (7, 9)


def record_read(ctx: Ctx, ref: str | int, meeting_id: int | None = None) -> Read:
    """The signed-in person read the doc's current version."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    row = Read(
        doc_id=doc.id,
        reader=ctx.principal.username,
        version_number=doc.current_version,
        meeting_id=meeting_id,
        read_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    access.record(
        ctx,
        "read",
        doc,
        object_type="docs_read",
        object_id=row.id,
        details={"reader": row.reader, "version": row.version_number, "meeting": meeting_id},
    )
    return row


# --- meetings ---------------------------------------------------------------------------


def meeting_snapshot(ctx: Ctx, meeting: Meeting) -> dict[str, Any]:
    doc = ctx.session.get(Document, meeting.doc_id)
    assert doc is not None
    remaining = max(0, int((meeting.reading_ends_at - ctx.now).total_seconds()))
    return {
        "id": meeting.id,
        "doc": doc.slug,
        "version": meeting.version_number,
        "started_by": meeting.started_by,
        "started_at": meeting.started_at.isoformat(),
        "reading_seconds": meeting.reading_seconds,
        "reading_ends_at": meeting.reading_ends_at.isoformat(),
        "reading_remaining_seconds": 0 if meeting.ended_at else remaining,
        "phase": _phase(ctx, meeting),
        "ended_at": meeting.ended_at.isoformat() if meeting.ended_at else None,
        "attendees": [
            {
                "username": a.username,
                "joined_at": a.joined_at.isoformat(),
                "finished_reading_at": a.finished_reading_at.isoformat()
                if a.finished_reading_at
                else None,
            }
            for a in attendees(ctx, meeting)
        ],
    }


def _phase(ctx: Ctx, meeting: Meeting) -> str:
    if meeting.ended_at is not None:
        return "ended"
    return "reading" if ctx.now < meeting.reading_ends_at else "discussion"


def attendees(ctx: Ctx, meeting: Meeting) -> list[Attendee]:
    return list(
        ctx.session.execute(
            select(Attendee).where(Attendee.meeting_id == meeting.id).order_by(Attendee.id)
        ).scalars()
    )


def start_meeting(ctx: Ctx, ref: str | int) -> Meeting:
    """A review meeting: silent reading for the doc's reading time (1,700 words per 15
    minutes, rounded up to the minute), then comments. The starter attends."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    reviews._require_open_for_review(doc)
    if open_meeting(ctx, doc) is not None:
        raise Conflict(f"{doc.slug} already has a meeting going on", code="meeting_running")
    current = reviews._version(ctx, doc)
    seconds = document.reading_seconds(current.words)
    meeting = Meeting(
        doc_id=doc.id,
        version_number=current.number,
        started_by=ctx.principal.username,
        started_at=ctx.now,
        reading_seconds=seconds,
        reading_ends_at=ctx.now + timedelta(seconds=seconds),
    )
    ctx.session.add(meeting)
    ctx.session.flush()
    access.record(
        ctx,
        "meeting_started",
        doc,
        object_type="docs_meeting",
        object_id=meeting.id,
        details={"meeting": meeting.id, "reading_seconds": seconds},
    )
    _attend(ctx, meeting)
    return meeting


def open_meeting(ctx: Ctx, doc: Document) -> Meeting | None:
    return ctx.session.execute(
        select(Meeting)
        .where(Meeting.doc_id == doc.id, Meeting.ended_at.is_(None))
        .order_by(Meeting.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def get_meeting(ctx: Ctx, meeting_id: int) -> Meeting:
    access.require_reader(ctx)
    meeting = ctx.session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound(f"no meeting {meeting_id}", details={"field": "meeting"})
    try:
        access.get(ctx, meeting.doc_id)
    except NotFound:
        raise NotFound(f"no meeting {meeting_id}", details={"field": "meeting"}) from None
    return meeting


def _running(ctx: Ctx, meeting_id: int) -> tuple[Document, Meeting]:
    access.require_writer(ctx)
    meeting = get_meeting(ctx, meeting_id)
    if meeting.ended_at is not None:
        raise Conflict(f"meeting {meeting.id} has ended", code="meeting_ended")
    doc = ctx.session.get(Document, meeting.doc_id)
    assert doc is not None
    return doc, meeting


def _attendee(ctx: Ctx, meeting: Meeting) -> Attendee | None:
    return ctx.session.execute(
        select(Attendee).where(
            Attendee.meeting_id == meeting.id, Attendee.username == ctx.principal.username
        )
    ).scalar_one_or_none()


def _attend(ctx: Ctx, meeting: Meeting) -> Attendee:
    row = Attendee(meeting_id=meeting.id, username=ctx.principal.username, joined_at=ctx.now)
    ctx.session.add(row)
    ctx.session.flush()
    return row


def join(ctx: Ctx, meeting_id: int) -> Attendee:
    doc, meeting = _running(ctx, meeting_id)
    existing = _attendee(ctx, meeting)
    if existing is not None:
        return existing
    row = _attend(ctx, meeting)
    access.record(
        ctx,
        "meeting_joined",
        doc,
        object_type="docs_meeting",
        object_id=meeting.id,
        details={"meeting": meeting.id, "attendee": row.username},
        event=False,
    )
    return row


def finish_reading(ctx: Ctx, meeting_id: int) -> Attendee:
    """An attendee says they have read the doc: the read is recorded for their load."""
    doc, meeting = _running(ctx, meeting_id)
    row = _attendee(ctx, meeting) or join(ctx, meeting_id)
    if row.finished_reading_at is not None:
        return row
    row.finished_reading_at = ctx.now
    ctx.session.flush()
    record_read(ctx, doc.id, meeting_id=meeting.id)
    return row


def end_meeting(ctx: Ctx, meeting_id: int) -> Meeting:
    doc, meeting = _running(ctx, meeting_id)
    if ctx.principal.username != meeting.started_by:
        access.require_editor(ctx, doc)
    meeting.ended_at = ctx.now
    ctx.session.flush()
    names = [a.username for a in attendees(ctx, meeting)]
    read = [a.username for a in attendees(ctx, meeting) if a.finished_reading_at]
    access.record(
        ctx,
        "meeting_ended",
        doc,
        object_type="docs_meeting",
        object_id=meeting.id,
        details={"meeting": meeting.id, "attended": names, "read": read},
    )
    return meeting


# A meeting nobody ended is closed this long after its reading time is over.
STALE_AFTER = timedelta(hours=8)


def stale_meetings(session: Session, now: datetime, limit: int) -> list[int]:
    return list(
        session.execute(
            select(Meeting.id)
            .where(Meeting.ended_at.is_(None), Meeting.reading_ends_at <= now - STALE_AFTER)
            .order_by(Meeting.id)
            .limit(limit)
        ).scalars()
    )


def close_stale(ctx: Ctx, meeting_id: int) -> None:
    """The worker ends a forgotten meeting; a meeting someone ended meanwhile is left as is."""
    meeting = ctx.session.get(Meeting, meeting_id)
    if meeting is None or meeting.ended_at is not None:
        raise StaleState(f"meeting {meeting_id} was ended meanwhile")
    if meeting.reading_ends_at > ctx.now - STALE_AFTER:
        raise StaleState(f"meeting {meeting_id} is not stale")
    end_meeting(ctx, meeting_id)


def meetings(ctx: Ctx, ref: str | int) -> list[Meeting]:
    access.require_reader(ctx)
    doc = access.get(ctx, ref)
    return list(
        ctx.session.execute(
            select(Meeting).where(Meeting.doc_id == doc.id).order_by(Meeting.id.desc())
        ).scalars()
    )


# --- reading load -----------------------------------------------------------------------


def zone(name: str | None) -> ZoneInfo:
    return inputs.checked_zone(name or "UTC")


def zone_of(ctx: Ctx, username: str) -> str:
    row = ctx.session.execute(
        select(ReaderZone.tz).where(ReaderZone.username == username)
    ).scalar_one_or_none()
    return row or "UTC"


def set_zone(ctx: Ctx, tz: str) -> str:
    """The signed-in person's reading week is counted in ``tz`` from now on."""
    access.require_writer(ctx)
    name = zone(tz).key
    username = ctx.principal.username
    row = ctx.session.execute(
        select(ReaderZone).where(ReaderZone.username == username)
    ).scalar_one_or_none()
    before = {"tz": row.tz} if row else None
    if row is None:
        ctx.session.add(ReaderZone(username=username, tz=name, updated_at=ctx.now))
    else:
        row.tz, row.updated_at = name, ctx.now
    ctx.session.flush()
    audit.record(
        ctx, "docs.reading_zone_set", "docs_reader", username, before=before, after={"tz": name}
    )
    return name


def iso_week_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 of ``day``'s ISO week, in ``tz``."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    return start, start + timedelta(days=7)


def band(count: int) -> str:
    low, high = NORM
    return "below" if count < low else ("above" if count > high else "within")


@dataclass
class Load:
    username: str
    week: str
    tz: str
    read: list[str]
    reviewed: list[str]

    @property
    def docs(self) -> list[str]:
        return sorted(set(self.read) | set(self.reviewed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "week": self.week,
            "tz": self.tz,
            "read": self.read,
            "reviewed": self.reviewed,
            "docs": len(self.docs),
            "norm": list(NORM),
            "band": band(len(self.docs)),
        }


def load(ctx: Ctx, username: str, day: date | None = None, tz: str | None = None) -> Load:
    """The docs ``username`` read or reviewed in the ISO week of ``day`` (today by default),
    counted once each against the 7–9 docs norm. The week is the person's: in ``tz`` when
    given, else in the zone they chose, else UTC."""
    access.require_reader(ctx)
    if accounts.find_user(ctx.session, username) is None:
        raise NotFound(f"no user {username!r}", details={"field": "username"})
    zone_info = zone(tz or zone_of(ctx, username))
    day = day or ctx.now.astimezone(zone_info).date()
    start, end = iso_week_bounds(day, zone_info)
    year, week, _ = day.isocalendar()

    def slugs(query: Any) -> list[str]:
        return sorted(set(ctx.session.execute(query).scalars()))

    read = slugs(
        select(Document.slug)
        .join(Read, Read.doc_id == Document.id)
        .where(Read.reader == username, Read.read_at >= start, Read.read_at < end)
        .where(access.visible(ctx))
    )
    reviewed = slugs(
        select(Document.slug)
        .join(Review, Review.doc_id == Document.id)
        .where(Review.reviewer == username, Review.created_at >= start, Review.created_at < end)
        .where(access.visible(ctx))
    )
    return Load(username, f"{year}-W{week:02d}", zone_info.key, read, reviewed)


def loads(ctx: Ctx, day: date | None = None, tz: str | None = None) -> list[Load]:
    """Everyone's load this week (people only; bots read nothing)."""
    access.require_reader(ctx)
    return [
        load(ctx, user.username, day, tz)
        for user in accounts.list_users(ctx)
        if not user.is_bot and user.active
    ]
