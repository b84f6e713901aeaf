"""HTTP API of the docs registry and reviews (`/api/v1/docs/…`): docs, versions and diffs,
statuses, links, upload and sync, comments, answers, reviews, meetings, queue and load."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.docs import access, lifecycle, reading, registry, reviews
from mechanisms.docs.document import MAX_BODY_CHARS
from mechanisms.docs.tables import Comment, DocVersion, Meeting
from mechanisms.web.http import (
    Input,
    RowId,
    Text,
    UnitOfWorkRoute,
    read_upload,
    request_ctx,
    upload_body,
)

router = APIRouter(prefix="/api/v1/docs", route_class=UnitOfWorkRoute, tags=["docs"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
DocRef = Annotated[str, Path(min_length=1, max_length=100, description="A doc's slug or id.")]
Name = Annotated[Text, Field(min_length=1, max_length=64)]
Body = Annotated[Text, Field(max_length=MAX_BODY_CHARS)]
Note = Annotated[Text, Field(max_length=4000)]
# A calendar day as YYYY-MM-DD only (lax parsing would read "0" as 1970-01-01).
DayQ = Annotated[
    str | None,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Any day of the ISO week, YYYY-MM-DD; today by default.",
    ),
]


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is no calendar day", details={"field": "day"}) from None


# --- models ---------------------------------------------------------------------------


class LinkIn(Input):
    kind: Literal["roadmap", "flag", "deploy"]
    ref: Annotated[Text, Field(min_length=1, max_length=300)]


class DocIn(Input):
    title: Annotated[Text, Field(min_length=1, max_length=300)]
    body: Body | None = Field(default=None, description="Markdown; the template's when absent.")
    template: Body | None = Field(
        default=None, description="A Markdown template with '## ' sections (default: decision doc)."
    )
    slug: Annotated[Text, Field(min_length=1, max_length=100)] | None = None
    team: Name | None = None
    owners: list[Name] = Field(default_factory=list, max_length=50)
    reviewers: list[Name] = Field(default_factory=list, max_length=50)
    tags: list[Name] = Field(default_factory=list, max_length=30)
    links: list[LinkIn] = Field(default_factory=list, max_length=50)


class DocPatch(Input):
    owners: list[Name] | None = Field(default=None, max_length=50)
    reviewers: list[Name] | None = Field(default=None, max_length=50)
    tags: list[Name] | None = Field(default=None, max_length=30)
    slug: Annotated[Text, Field(min_length=1, max_length=100)] | None = None


class LinkOut(BaseModel):
    kind: str
    ref: str


class BlockerOut(BaseModel):
    code: str
    message: str
    ref: Any = None


class DocOut(BaseModel):
    id: int
    slug: str
    key: str | None
    title: str
    status: str
    door: str | None
    team: str | None
    author: str
    owners: list[str]
    reviewers: list[str]
    tags: list[str]
    links: list[LinkOut]
    version: int
    words: int
    reading_minutes: float
    superseded_by: str | None
    supersedes: str | None
    decided_by: str | None
    decided_at: str | None
    decision_note: str
    submitted_at: str | None
    created_at: str
    updated_at: str
    actions: list[str]
    score: float | None = None


class DocDetailOut(DocOut):
    body: str
    blockers: list[BlockerOut]


class VersionOut(BaseModel):
    number: int
    title: str
    digest: str
    words: int
    reading_minutes: float
    note: str
    created_by: str
    created_at: str
    body: str | None = None


class RevisionIn(Input):
    body: Body
    title: Annotated[Text, Field(min_length=1, max_length=300)] | None = None
    note: Annotated[Text, Field(max_length=2000)] = ""


class RevisionOut(BaseModel):
    changed: bool
    doc: DocOut


class DiffRowOut(BaseModel):
    kind: str
    old_no: int | None
    old: str
    new_no: int | None
    new: str


class DiffOut(BaseModel):
    doc: str
    from_version: int
    to_version: int
    added: int
    removed: int
    unified: str
    rows: list[DiffRowOut]


class DecideIn(Input):
    outcome: Literal["accepted", "rejected"]
    door: Literal["one_way", "two_way"] | None = None
    note: Note = ""


class SupersedeIn(Input):
    successor: Annotated[Text, Field(min_length=1, max_length=100)]
    note: Note = ""


class FileIn(Input):
    path: Annotated[Text, Field(min_length=1, max_length=300)]
    content: Body


class SyncIn(Input):
    files: list[FileIn] = Field(min_length=1, max_length=200)


class SyncOut(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


class UpsertOut(BaseModel):
    outcome: str
    doc: DocOut


class CommentIn(Input):
    kind: Literal["question", "concern", "note"]
    body: Annotated[Text, Field(min_length=1, max_length=reviews.MAX_COMMENT)]
    paragraph: int | None = Field(default=None, ge=0, le=100_000)


class ReplyIn(Input):
    body: Annotated[Text, Field(min_length=1, max_length=reviews.MAX_COMMENT)]


class CommentOut(BaseModel):
    id: int
    kind: str
    body: str
    author: str
    parent: int | None
    version: int
    paragraph: int | None
    quote: str
    anchor_state: str
    state: str | None
    answered_by: str | None
    resolved_by: str | None
    created_at: str


class ThreadOut(CommentOut):
    replies: list[CommentOut]


class ReviewIn(Input):
    no_questions: StrictBool
    note: Note = ""


class ReviewOut(BaseModel):
    id: int
    reviewer: str
    version: int
    no_questions: bool
    note: str
    created_at: str


class AttendeeOut(BaseModel):
    username: str
    joined_at: str
    finished_reading_at: str | None


class MeetingOut(BaseModel):
    id: int
    doc: str
    version: int
    started_by: str
    started_at: str
    reading_seconds: int
    reading_ends_at: str
    reading_remaining_seconds: int
    phase: str
    ended_at: str | None
    attendees: list[AttendeeOut]


class ReadOut(BaseModel):
    doc: str
    reader: str
    version: int
    read_at: str


class QuestionOut(BaseModel):
    doc: str
    comment: CommentOut


class QueueOut(BaseModel):
    username: str
    to_review: list[DocOut]
    questions: list[QuestionOut]


class LoadOut(BaseModel):
    username: str
    week: str
    tz: str
    read: list[str]
    reviewed: list[str]
    docs: int
    norm: list[int]
    band: str


# --- translation --------------------------------------------------------------------


def _doc_out(ctx: Ctx, doc: Any, score: float | None = None) -> DocOut:
    return DocOut(**registry.snapshot(ctx, doc), score=score)


def _detail(ctx: Ctx, ref: str) -> DocDetailOut:
    doc = registry.get(ctx, ref)
    return DocDetailOut(
        **registry.snapshot(ctx, doc),
        body=registry.version(ctx, doc).body,
        blockers=[b.as_dict() for b in reviews.blockers(ctx, doc)],
    )


def _version_out(row: DocVersion, with_body: bool = False) -> VersionOut:
    return VersionOut(
        number=row.number,
        title=row.title,
        digest=row.digest,
        words=row.words,
        reading_minutes=row.reading_minutes,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at.isoformat(),
        body=row.body if with_body else None,
    )


def comment_out(c: Comment) -> CommentOut:
    return CommentOut(
        id=c.id,
        kind=c.kind,
        body=c.body,
        author=c.author,
        parent=c.parent_id,
        version=c.version_number,
        paragraph=c.paragraph,
        quote=c.quote,
        anchor_state=c.anchor_state,
        state=c.state if c.kind == "question" else None,
        answered_by=c.answered_by,
        resolved_by=c.resolved_by,
        created_at=c.created_at.isoformat(),
    )


def _meeting_out(ctx: Ctx, meeting: Meeting) -> MeetingOut:
    return MeetingOut(**reading.meeting_snapshot(ctx, meeting))


def _review_out(r: Any) -> ReviewOut:
    return ReviewOut(
        id=r.id,
        reviewer=r.reviewer,
        version=r.version_number,
        no_questions=r.no_questions,
        note=r.note,
        created_at=r.created_at.isoformat(),
    )


# --- the registry ---------------------------------------------------------------------


@router.get("", response_model=list[DocOut])
def list_docs(
    ctx: CtxDep,
    status: Annotated[Literal[*lifecycle.STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    author: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DocOut]:
    """Docs by status, tag, author and full-text search (words, "phrases", -excluded),
    ranked by relevance when searching."""
    found = registry.list_docs(ctx, registry.Filters(status, tag, author, q, limit))
    return [_doc_out(ctx, doc, score) for doc, score in found]


@router.post("", response_model=DocDetailOut, status_code=201)
def create_doc(body: DocIn, ctx: CtxDep) -> DocDetailOut:
    doc = registry.create(
        ctx,
        registry.NewDoc(
            title=body.title,
            body=body.body,
            template=body.template,
            slug=body.slug,
            team=body.team,
            owners=body.owners,
            reviewers=body.reviewers,
            tags=body.tags,
            links=[(link.kind, link.ref) for link in body.links],
        ),
    )
    return _detail(ctx, str(doc.id))


@router.post("/upload", response_model=UpsertOut, openapi_extra=upload_body("text/markdown"))
async def upload_doc(
    request: Request,
    ctx: CtxDep,
    path: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
) -> UpsertOut:
    """A Markdown file (UTF-8) as the body or a form's ``file`` part: upserted by its front
    matter ``id``, else by ``path``; a new one is a draft."""
    data = await read_upload(request, "Markdown file")
    result = await run_in_threadpool(registry.upload, ctx, data, path)
    return UpsertOut(outcome=result.outcome, doc=_doc_out(ctx, result.doc))


@router.post("/sync", response_model=SyncOut)
def sync_docs(body: SyncIn, ctx: CtxDep) -> SyncOut:
    """Many Markdown files at once, all or nothing; syncing the same files again changes
    nothing."""
    files = [(f.path, f.content.encode()) for f in body.files]
    return SyncOut(**registry.sync(ctx, files).as_dict())


@router.get("/queue", response_model=QueueOut)
def review_queue(
    ctx: CtxDep, username: Annotated[str | None, Query(min_length=1, max_length=64)] = None
) -> QueueOut:
    """Docs waiting for a person's review, and unanswered questions on their docs."""
    who = username or ctx.principal.username
    queue = reviews.queue(ctx, who)
    return QueueOut(
        username=who,
        to_review=[_doc_out(ctx, d) for d in queue["to_review"]],
        questions=[QuestionOut(doc=d.slug, comment=comment_out(c)) for c, d in queue["questions"]],
    )


@router.get("/load", response_model=LoadOut)
def reading_load(
    ctx: CtxDep,
    username: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    day: DayQ = None,
    tz: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> LoadOut:
    """Docs read and reviewed in an ISO week, against the 7–9 docs norm."""
    who = username or ctx.principal.username
    return LoadOut(**reading.load(ctx, who, _day(day), tz).as_dict())


class ZoneIn(Input):
    tz: Annotated[Text, Field(min_length=1, max_length=64, description="IANA, e.g. Europe/Berlin")]


class ZoneOut(BaseModel):
    username: str
    tz: str


@router.put("/load/zone", response_model=ZoneOut)
def set_reading_zone(body: ZoneIn, ctx: CtxDep) -> ZoneOut:
    """The time zone the caller's reading week is counted in."""
    return ZoneOut(username=ctx.principal.username, tz=reading.set_zone(ctx, body.tz))


@router.get("/loads", response_model=list[LoadOut])
def reading_loads(
    ctx: CtxDep,
    day: DayQ = None,
    tz: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[LoadOut]:
    return [LoadOut(**x.as_dict()) for x in reading.loads(ctx, _day(day), tz)]


@router.get("/meetings/{meeting_id}", response_model=MeetingOut)
def get_meeting(meeting_id: RowId, ctx: CtxDep) -> MeetingOut:
    return _meeting_out(ctx, reading.get_meeting(ctx, meeting_id))


@router.post("/meetings/{meeting_id}/join", response_model=MeetingOut)
def join_meeting(meeting_id: RowId, ctx: CtxDep) -> MeetingOut:
    reading.join(ctx, meeting_id)
    return _meeting_out(ctx, reading.get_meeting(ctx, meeting_id))


@router.post("/meetings/{meeting_id}/read", response_model=MeetingOut)
def finish_reading(meeting_id: RowId, ctx: CtxDep) -> MeetingOut:
    """The caller has read the doc (recorded for their reading load)."""
    reading.finish_reading(ctx, meeting_id)
    return _meeting_out(ctx, reading.get_meeting(ctx, meeting_id))


@router.post("/meetings/{meeting_id}/end", response_model=MeetingOut)
def end_meeting(meeting_id: RowId, ctx: CtxDep) -> MeetingOut:
    return _meeting_out(ctx, reading.end_meeting(ctx, meeting_id))


@router.post("/comments/{comment_id}/replies", response_model=CommentOut, status_code=201)
def reply(comment_id: RowId, body: ReplyIn, ctx: CtxDep) -> CommentOut:
    return comment_out(reviews.reply(ctx, comment_id, body.body))


@router.post("/comments/{comment_id}/answer", response_model=CommentOut, status_code=201)
def answer(comment_id: RowId, body: ReplyIn, ctx: CtxDep) -> CommentOut:
    """The doc's author or an owner answers a question; it stops blocking the decision."""
    return comment_out(reviews.answer(ctx, comment_id, body.body))


@router.post("/comments/{comment_id}/resolve", response_model=CommentOut)
def resolve(comment_id: RowId, ctx: CtxDep) -> CommentOut:
    return comment_out(reviews.resolve(ctx, comment_id))


@router.get("/{doc}", response_model=DocDetailOut)
def get_doc(doc: DocRef, ctx: CtxDep) -> DocDetailOut:
    return _detail(ctx, doc)


@router.patch("/{doc}", response_model=DocOut)
def update_doc(doc: DocRef, body: DocPatch, ctx: CtxDep) -> DocOut:
    changes = registry.Changes(body.owners, body.reviewers, body.tags, body.slug)
    return _doc_out(ctx, registry.update(ctx, doc, changes))


@router.get("/{doc}/versions", response_model=list[VersionOut])
def list_versions(doc: DocRef, ctx: CtxDep) -> list[VersionOut]:
    return [_version_out(v) for v in registry.versions(ctx, doc)]


@router.post("/{doc}/versions", response_model=RevisionOut)
def revise(doc: DocRef, body: RevisionIn, ctx: CtxDep) -> RevisionOut:
    """A new version of the text; anchored comments are re-located on it."""
    row = registry.revise(ctx, doc, body.body, body.title, body.note)
    return RevisionOut(changed=row is not None, doc=_doc_out(ctx, access.get(ctx, doc)))


@router.get("/{doc}/versions/{number}", response_model=VersionOut)
def get_version(
    doc: DocRef, number: Annotated[int, Path(ge=1, le=1_000_000)], ctx: CtxDep
) -> VersionOut:
    return _version_out(registry.version(ctx, registry.get(ctx, doc), number), with_body=True)


@router.get("/{doc}/diff", response_model=DiffOut)
def diff(
    doc: DocRef,
    ctx: CtxDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=1_000_000)],
    to_version: Annotated[int | None, Query(alias="to", ge=1, le=1_000_000)] = None,
) -> DiffOut:
    """Between two versions (to the current one by default): unified diff and rows."""
    found = registry.diff(ctx, doc, from_version, to_version)
    return DiffOut(
        doc=found["doc"],
        from_version=found["from"],
        to_version=found["to"],
        added=found["added"],
        removed=found["removed"],
        unified=found["unified"],
        rows=[DiffRowOut(**row.__dict__) for row in found["rows"]],
    )


@router.post("/{doc}/submit", response_model=DocOut)
def submit(doc: DocRef, ctx: CtxDep) -> DocOut:
    return _doc_out(ctx, registry.submit(ctx, doc))


@router.post("/{doc}/withdraw", response_model=DocOut)
def withdraw(doc: DocRef, ctx: CtxDep) -> DocOut:
    return _doc_out(ctx, registry.withdraw(ctx, doc))


@router.post("/{doc}/decide", response_model=DocOut)
def decide(doc: DocRef, body: DecideIn, ctx: CtxDep) -> DocOut:
    """Accept or reject; refused (409 ``decision_blocked``) with every reason in
    ``details.reasons`` while a question is unanswered or a required review is missing."""
    return _doc_out(ctx, registry.decide(ctx, doc, body.outcome, body.door, body.note))


@router.post("/{doc}/supersede", response_model=DocOut)
def supersede(doc: DocRef, body: SupersedeIn, ctx: CtxDep) -> DocOut:
    return _doc_out(ctx, registry.supersede(ctx, doc, body.successor, body.note))


@router.get("/{doc}/blockers", response_model=list[BlockerOut])
def blockers(doc: DocRef, ctx: CtxDep) -> list[BlockerOut]:
    """Every reason the doc cannot be decided now (empty when it can)."""
    return [BlockerOut(**b.as_dict()) for b in reviews.blockers(ctx, registry.get(ctx, doc))]


@router.post("/{doc}/links", response_model=LinkOut, status_code=201)
def add_link(doc: DocRef, body: LinkIn, ctx: CtxDep) -> LinkOut:
    row = registry.link(ctx, doc, body.kind, body.ref)
    return LinkOut(kind=row.kind, ref=row.ref)


@router.delete("/{doc}/links", status_code=204)
def remove_link(
    doc: DocRef,
    ctx: CtxDep,
    kind: Annotated[Literal["roadmap", "flag", "deploy"], Query()],
    ref: Annotated[str, Query(min_length=1, max_length=300)],
) -> None:
    registry.unlink(ctx, doc, kind, ref)


@router.get("/{doc}/comments", response_model=list[ThreadOut])
def list_comments(doc: DocRef, ctx: CtxDep) -> list[ThreadOut]:
    return [
        ThreadOut(**comment_out(t.root).model_dump(), replies=[comment_out(r) for r in t.replies])
        for t in reviews.threads(reviews.comments(ctx, doc))
    ]


@router.post("/{doc}/comments", response_model=CommentOut, status_code=201)
def add_comment(doc: DocRef, body: CommentIn, ctx: CtxDep) -> CommentOut:
    """A question, concern or note on a paragraph (0-based) of the current version."""
    return comment_out(reviews.comment(ctx, doc, body.kind, body.body, body.paragraph))


@router.get("/{doc}/reviews", response_model=list[ReviewOut])
def list_reviews(doc: DocRef, ctx: CtxDep) -> list[ReviewOut]:
    return [_review_out(r) for r in reviews.reviews(ctx, doc)]


@router.post("/{doc}/reviews", response_model=ReviewOut, status_code=201)
def add_review(doc: DocRef, body: ReviewIn, ctx: CtxDep) -> ReviewOut:
    """Record a review: with the questions already asked, or ``no_questions: true``."""
    return _review_out(reviews.review(ctx, doc, no_questions=body.no_questions, note=body.note))


@router.post("/{doc}/reads", response_model=ReadOut, status_code=201)
def add_read(doc: DocRef, ctx: CtxDep) -> ReadOut:
    row = reading.record_read(ctx, doc)
    return ReadOut(
        doc=access.get(ctx, doc).slug,
        reader=row.reader,
        version=row.version_number,
        read_at=row.read_at.isoformat(),
    )


@router.get("/{doc}/meetings", response_model=list[MeetingOut])
def list_meetings(doc: DocRef, ctx: CtxDep) -> list[MeetingOut]:
    return [_meeting_out(ctx, m) for m in reading.meetings(ctx, doc)]


@router.post("/{doc}/meetings", response_model=MeetingOut, status_code=201)
def start_meeting(doc: DocRef, ctx: CtxDep) -> MeetingOut:
    """Start a review meeting: silent reading sized by the doc's reading time, then comments."""
    return _meeting_out(ctx, reading.start_meeting(ctx, doc))
