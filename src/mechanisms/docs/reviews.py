"""Reviews: comments anchored to paragraphs, questions that must be answered, reviewers'
recorded reviews, and the reasons a doc cannot be decided yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.docs import access, anchors, lifecycle
from mechanisms.docs.document import check_text
from mechanisms.docs.tables import Comment, DocPerson, Document, DocVersion, Review

KINDS = ("question", "concern", "note")
REPLY_KINDS = ("reply", "answer")
MAX_COMMENT = 10_000
OPEN, ANSWERED, RESOLVED = "open", "answered", "resolved"


def comment_snapshot(c: Comment) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "parent": c.parent_id,
        "author": c.author,
        "paragraph": c.paragraph,
        "anchor_state": c.anchor_state,
        "state": c.state,
    }


def _version(ctx: Ctx, doc: Document, number: int | None = None) -> DocVersion:
    number = number or doc.current_version
    row = ctx.session.execute(
        select(DocVersion).where(DocVersion.doc_id == doc.id, DocVersion.number == number)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{doc.slug} has no version {number}", details={"field": "version"})
    return row


def _require_open_for_review(doc: Document) -> None:
    if doc.status not in lifecycle.EDITABLE:
        raise lifecycle.InvalidTransition(
            f"{doc.slug} is {doc.status.replace('_', ' ')}; comments close once a doc is decided",
            details={"status": doc.status},
        )


def comment(
    ctx: Ctx, ref: str | int, kind: str, body: str, paragraph: int | None = None
) -> Comment:
    """A question, concern or note on paragraph ``paragraph`` (0-based) of the current
    version, or on the doc as a whole when no paragraph is given."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    _require_open_for_review(doc)
    if kind not in KINDS:
        raise InvalidInput(
            f"a comment is a {', a '.join(KINDS)} (got {kind!r})", details={"field": "kind"}
        )
    body = _text(body)
    current = _version(ctx, doc)
    anchor = None
    if paragraph is not None:
        paras = anchors.paragraphs(current.body)
        if not 0 <= paragraph < len(paras):
            raise InvalidInput(
                f"version {current.number} of {doc.slug} has paragraphs 0 to {len(paras) - 1}",
                details={"field": "paragraph"},
            )
        anchor = anchors.anchor_at(paras, paragraph)
    row = Comment(
        doc_id=doc.id,
        kind=kind,
        body=body,
        author=ctx.principal.username,
        version_number=current.number,
        quote=anchor.text if anchor else "",
        anchor_fingerprint=anchor.fingerprint if anchor else "",
        anchor_text=anchor.text if anchor else "",
        anchor_before=anchor.before if anchor else "",
        anchor_after=anchor.after if anchor else "",
        paragraph=paragraph,
        anchored_version=current.number,
        anchor_state="exact",
        state=OPEN,
        created_at=ctx.now,
    )
    return _store_comment(ctx, doc, row, {"kind": kind, "paragraph": paragraph})


def _text(body: str) -> str:
    body = check_text(body, "body", MAX_COMMENT).strip()
    if not body:
        raise InvalidInput("say something: the comment is empty", details={"field": "body"})
    return body


def get_comment(ctx: Ctx, comment_id: int) -> tuple[Document, Comment]:
    row = ctx.session.get(Comment, comment_id)
    if row is None:
        raise NotFound(f"no comment {comment_id}", details={"field": "comment"})
    doc = access.lock(ctx, row.doc_id)
    return doc, row


def _thread_root(ctx: Ctx, comment_id: int) -> tuple[Document, Comment]:
    doc, row = get_comment(ctx, comment_id)
    if row.parent_id is not None:
        raise InvalidInput(
            "reply to the comment that starts the thread", details={"field": "comment"}
        )
    return doc, row


def reply(ctx: Ctx, comment_id: int, body: str) -> Comment:
    """A reply in a comment's thread; anyone who may comment may reply."""
    access.require_writer(ctx)
    doc, root = _thread_root(ctx, comment_id)
    _require_open_for_review(doc)
    return _add_reply(ctx, doc, root, "reply", _text(body))


def _add_reply(ctx: Ctx, doc: Document, root: Comment, kind: str, body: str) -> Comment:
    row = Comment(
        doc_id=doc.id,
        parent_id=root.id,
        kind=kind,
        body=body,
        author=ctx.principal.username,
        version_number=doc.current_version,
        paragraph=None,
        anchored_version=doc.current_version,
        anchor_state=root.anchor_state,
        state=OPEN,
        created_at=ctx.now,
    )
    return _store_comment(ctx, doc, row, {"kind": kind, "thread": root.id})


def _store_comment(ctx: Ctx, doc: Document, row: Comment, details: dict[str, Any]) -> Comment:
    """Write a new comment or reply with its audit record and event."""
    ctx.session.add(row)
    ctx.session.flush()
    access.record(
        ctx,
        "comment_added",
        doc,
        object_type="docs_comment",
        object_id=row.id,
        after=comment_snapshot(row),
        details={**details, "author": row.author},
    )
    return row


def answer(ctx: Ctx, question_id: int, body: str) -> Comment:
    """The author's or an owner's answer: the question stops blocking the decision."""
    access.require_writer(ctx)
    doc, question = _thread_root(ctx, question_id)
    access.require_answerer(ctx, doc)
    _require_open_for_review(doc)
    if question.kind != "question":
        raise InvalidInput(
            f"comment {question.id} is a {question.kind}; only questions are answered "
            "(reply to it instead)",
            details={"field": "comment"},
        )
    body = _text(body)
    before = comment_snapshot(question)
    row = _add_reply(ctx, doc, question, "answer", body)
    if question.state == OPEN:
        question.state, question.answered_by, question.answered_at = (
            ANSWERED,
            ctx.principal.username,
            ctx.now,
        )
    ctx.session.flush()
    access.record(
        ctx,
        "question_answered",
        doc,
        object_type="docs_comment",
        object_id=question.id,
        before=before,
        after=comment_snapshot(question),
        details={"question": question.id, "asked_by": question.author, "answer": row.id},
    )
    return row


def resolve(ctx: Ctx, question_id: int) -> Comment:
    """The asker (or the doc's author or an owner) closes an answered question."""
    access.require_writer(ctx)
    doc, question = _thread_root(ctx, question_id)
    if question.kind != "question":
        raise InvalidInput("only questions are resolved", details={"field": "comment"})
    if ctx.principal.username != question.author:
        access.require_answerer(ctx, doc)
    if question.state == RESOLVED:
        raise Conflict(f"question {question.id} is already resolved", code="already_resolved")
    if question.state != ANSWERED:
        raise Conflict(
            f"question {question.id} has no answer yet; the doc's author or an owner answers "
            "it first",
            code="unanswered",
        )
    before = comment_snapshot(question)
    question.state, question.resolved_by, question.resolved_at = (
        RESOLVED,
        ctx.principal.username,
        ctx.now,
    )
    ctx.session.flush()
    access.record(
        ctx,
        "question_resolved",
        doc,
        object_type="docs_comment",
        object_id=question.id,
        before=before,
        after=comment_snapshot(question),
    )
    return question


def comments(ctx: Ctx, ref: str | int) -> list[Comment]:
    access.require_reader(ctx)
    doc = access.get(ctx, ref)
    return list(
        ctx.session.execute(
            select(Comment).where(Comment.doc_id == doc.id).order_by(Comment.id)
        ).scalars()
    )


@dataclass
class Thread:
    root: Comment
    replies: list[Comment]


def threads(rows: list[Comment]) -> list[Thread]:
    by_root: dict[int, Thread] = {}
    for row in rows:
        if row.parent_id is None:
            by_root[row.id] = Thread(row, [])
        elif row.parent_id in by_root:
            by_root[row.parent_id].replies.append(row)
    return list(by_root.values())


# --- reviews ---------------------------------------------------------------------------


def review(ctx: Ctx, ref: str | int, *, no_questions: bool, note: str = "") -> Review:
    """A reviewer records their review: with questions (asked as comments first) or an
    explicit "no questions". Either way it counts towards the required reviews."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    _require_open_for_review(doc)
    note = check_text(note, "note", 4000).strip()
    asked = _questions_by(ctx, doc, ctx.principal.username)
    if not no_questions and not asked:
        raise InvalidInput(
            "a review is at least one question or an explicit 'no questions'; ask your "
            "questions as comments first, or record no_questions",
            code="empty_review",
            details={"field": "no_questions"},
        )
    row = Review(
        doc_id=doc.id,
        reviewer=ctx.principal.username,
        version_number=doc.current_version,
        no_questions=no_questions,
        note=note,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    access.record(
        ctx,
        "reviewed",
        doc,
        object_type="docs_review",
        object_id=row.id,
        details={
            "reviewer": row.reviewer,
            "version": row.version_number,
            "no_questions": no_questions,
            "questions": asked,
        },
    )
    return row


def _questions_by(ctx: Ctx, doc: Document, username: str) -> int:
    return ctx.session.execute(
        select(func.count())
        .select_from(Comment)
        .where(
            Comment.doc_id == doc.id,
            Comment.kind == "question",
            Comment.author == username,
            Comment.parent_id.is_(None),
        )
    ).scalar_one()


def reviews(ctx: Ctx, ref: str | int) -> list[Review]:
    access.require_reader(ctx)
    doc = access.get(ctx, ref)
    return list(
        ctx.session.execute(
            select(Review).where(Review.doc_id == doc.id).order_by(Review.id)
        ).scalars()
    )


def has_reviewed(ctx: Ctx, doc: Document, username: str) -> bool:
    recorded = ctx.session.execute(
        select(Review.id).where(Review.doc_id == doc.id, Review.reviewer == username).limit(1)
    ).first()
    return recorded is not None or _questions_by(ctx, doc, username) > 0


@dataclass(frozen=True)
class Blocker:
    code: str
    message: str
    ref: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "ref": self.ref}


def blockers(ctx: Ctx, doc: Document) -> list[Blocker]:
    """Every reason the doc cannot be decided now (empty when it can)."""
    found: list[Blocker] = []
    if doc.status != lifecycle.IN_REVIEW:
        found.append(
            Blocker(
                "not_in_review",
                f"{doc.slug} is {doc.status.replace('_', ' ')}; only a doc in review is decided",
                doc.status,
            )
        )
    unanswered = ctx.session.execute(
        select(Comment)
        .where(
            Comment.doc_id == doc.id,
            Comment.kind == "question",
            Comment.parent_id.is_(None),
            Comment.state == OPEN,
        )
        .order_by(Comment.id)
    ).scalars()
    for q in unanswered:
        where = "" if q.paragraph is None else f" on paragraph {q.paragraph + 1}"
        if q.anchor_state == "orphaned":
            where = " on a paragraph that is gone (outdated)"
        found.append(
            Blocker(
                "unanswered_question",
                f"question {q.id} by {q.author}{where} is unanswered: {q.body[:120]}",
                q.id,
            )
        )
    for reviewer in access.people(ctx, doc, access.REVIEWER):
        if not has_reviewed(ctx, doc, reviewer):
            found.append(
                Blocker(
                    "review_missing",
                    f"required reviewer {reviewer} has not recorded a review",
                    reviewer,
                )
            )
    return found


# --- anchoring across versions -----------------------------------------------------


def reanchor(ctx: Ctx, doc: Document, body: str, number: int) -> dict[str, int]:
    """Re-locate every anchored comment on version ``number``; counts by outcome."""
    paras = anchors.paragraphs(body)
    counts = {"exact": 0, "moved": 0, "changed": 0, "orphaned": 0}
    rows = ctx.session.execute(
        select(Comment).where(
            Comment.doc_id == doc.id,
            Comment.parent_id.is_(None),
            Comment.anchor_fingerprint != "",
            Comment.anchor_state != "orphaned",
        )
    ).scalars()
    for row in rows:
        anchor = anchors.Anchor(
            row.anchor_fingerprint, row.anchor_text, row.anchor_before, row.anchor_after
        )
        located = anchors.relocate(anchor, paras, row.paragraph)
        row.anchored_version = number
        counts[located.state] += 1
        if located.index is None:
            row.anchor_state, row.paragraph = "orphaned", None
            continue
        # An edited paragraph keeps its comments only while it stays close to the text
        # it was last found as; "changed" is remembered so the page can say so.
        moved_on = anchors.anchor_at(paras, located.index)
        state = located.state
        if row.anchor_state == "changed" and state in ("exact", "moved"):
            state = "changed"
        row.anchor_fingerprint, row.anchor_text = moved_on.fingerprint, moved_on.text
        row.anchor_before, row.anchor_after = moved_on.before, moved_on.after
        row.paragraph, row.anchor_state = located.index, state
    ctx.session.flush()
    return counts


def queue(ctx: Ctx, username: str | None = None) -> dict[str, list[Any]]:
    """A person's review queue: docs in review where they are a required reviewer and have
    not reviewed, and unanswered questions on docs they wrote or own."""
    access.require_reader(ctx)

    who = username or ctx.principal.username
    waiting = [
        doc
        for doc in ctx.session.execute(
            select(Document)
            .join(DocPerson, DocPerson.doc_id == Document.id)
            .where(
                DocPerson.username == who,
                DocPerson.role == access.REVIEWER,
                Document.status == lifecycle.IN_REVIEW,
                access.visible(ctx),
            )
            .order_by(Document.submitted_at, Document.id)
        ).scalars()
        if not has_reviewed(ctx, doc, who)
    ]
    owned_ids = select(DocPerson.doc_id).where(
        DocPerson.username == who, DocPerson.role == access.OWNER
    )
    questions = list(
        ctx.session.execute(
            select(Comment, Document)
            .join(Document, Document.id == Comment.doc_id)
            .where(
                Comment.kind == "question",
                Comment.parent_id.is_(None),
                Comment.state == OPEN,
                Document.status.in_(lifecycle.EDITABLE),
                (Document.author == who) | Document.id.in_(owned_ids),
                access.visible(ctx),
            )
            .order_by(Comment.id)
        ).all()
    )
    return {"to_review": waiting, "questions": questions}
