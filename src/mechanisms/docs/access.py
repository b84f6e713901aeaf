"""Finding a doc, who may do what to it, and the record every change writes.

Everyone signed in reads docs. Writing anything needs the engineer role somewhere in the
organisation (so a viewer is refused before any doc is looked up); changing a doc's text
or people needs its author, an owner, a leader of its team or a site admin; answering a
question needs its author or an owner; deciding needs an owner or a leader."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, true

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Forbidden, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import credential_reaches, require_site_role, team_role, tenancy
from mechanisms.core.tables import Membership, Team, User
from mechanisms.docs.tables import DocPerson, Document

OWNER = "owner"
REVIEWER = "reviewer"


def require_reader(ctx: Ctx) -> None:
    require_site_role(ctx, Role.VIEWER)


def require_writer(ctx: Ctx) -> None:
    require_site_role(ctx, Role.ENGINEER)


def find(ctx: Ctx, ref: str | int, *, lock: bool = False) -> Document | None:
    text = str(ref).strip()
    if text.isdigit() and len(text) < 10:
        return ctx.session.get(Document, int(text), with_for_update=lock or None)
    query = select(Document).where(Document.slug == text)
    return ctx.session.execute(query.with_for_update() if lock else query).scalar_one_or_none()


def visible(ctx: Ctx) -> ColumnElement[bool]:
    """Docs of the caller's organisations: a doc's team says where it belongs; a doc with
    no team belongs to its author's organisations."""
    seen = tenancy(ctx)
    if seen.team_ids is None:
        return true()
    colleagues = (
        select(User.username)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.team_id.in_(sorted(seen.team_ids)))
    )
    return Document.team.in_(sorted(seen.team_slugs or ())) | (
        Document.team.is_(None) & Document.author.in_(colleagues)
    )


def _visible_or_none(ctx: Ctx, doc: Document | None) -> Document | None:
    if doc is None or tenancy(ctx).team_ids is None:
        return doc
    query = select(Document.id).where(Document.id == doc.id, visible(ctx))
    return doc if ctx.session.execute(query).first() else None


def get(ctx: Ctx, ref: str | int) -> Document:
    """A doc of the caller's organisations; another organisation's is not found."""
    doc = _visible_or_none(ctx, find(ctx, ref))
    if doc is None:
        raise NotFound(f"no doc {ref!r}", details={"field": "doc"})
    return doc


def lock(ctx: Ctx, ref: str | int) -> Document:
    """The doc, row-locked until the transaction ends: every change to a doc or its review
    takes this lock, so a question asked while the doc is being decided waits for the
    decision and then finds the doc decided (PostgreSQL; SQLite runs one writer at a time)."""
    doc = _visible_or_none(ctx, find(ctx, ref, lock=True))
    if doc is None:
        raise NotFound(f"no doc {ref!r}", details={"field": "doc"})
    return doc


def people(ctx: Ctx, doc: Document, role: str) -> list[str]:
    return list(
        ctx.session.execute(
            select(DocPerson.username)
            .where(DocPerson.doc_id == doc.id, DocPerson.role == role)
            .order_by(DocPerson.username)
        ).scalars()
    )


def owners(ctx: Ctx, doc: Document) -> list[str]:
    """The doc's owners; a doc nobody was named owner of is owned by its author."""
    return people(ctx, doc, OWNER) or [doc.author]


def _leads_team(ctx: Ctx, doc: Document) -> bool:
    if ctx.principal.is_site_admin and credential_reaches(ctx.principal, Role.ADMIN):
        return True
    if doc.team is None:
        return False
    team = ctx.session.execute(select(Team).where(Team.slug == doc.team)).scalar_one_or_none()
    held = team_role(ctx, team.id) if team else None
    return held is not None and held >= Role.LEADER


def is_owner(ctx: Ctx, doc: Document) -> bool:
    return ctx.principal.username in owners(ctx, doc)


def is_author_or_owner(ctx: Ctx, doc: Document) -> bool:
    return ctx.principal.username == doc.author or is_owner(ctx, doc)


def require_editor(ctx: Ctx, doc: Document) -> None:
    require_writer(ctx)
    if not (is_author_or_owner(ctx, doc) or _leads_team(ctx, doc)):
        raise Forbidden(
            f"only {doc.slug}'s author, owners or team leaders may change it",
            details={"doc": doc.slug},
        )


def require_answerer(ctx: Ctx, doc: Document) -> None:
    require_writer(ctx)
    if not (is_author_or_owner(ctx, doc) or _leads_team(ctx, doc)):
        raise Forbidden(
            f"questions on {doc.slug} are answered by its author or owners",
            details={"doc": doc.slug},
        )


def require_decider(ctx: Ctx, doc: Document) -> None:
    require_writer(ctx)
    if not (is_owner(ctx, doc) or _leads_team(ctx, doc)):
        raise Forbidden(
            f"{doc.slug} is decided by its owners ({', '.join(owners(ctx, doc))}) "
            "or a leader of its team",
            details={"doc": doc.slug},
        )


def record(
    ctx: Ctx,
    kind: str,
    doc: Document,
    *,
    object_type: str = "docs_document",
    object_id: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    event: bool = True,
) -> None:
    """One change: the audit record and the ``docs.<kind>`` event, in the caller's
    transaction."""
    payload = {"doc": doc.slug, "doc_id": doc.id, "status": doc.status, **(details or {})}
    target = object_id if object_id is not None else doc.id
    audit.record(
        ctx, f"docs.{kind}", object_type, target, before=before, after=after, details=payload
    )
    if event:
        events.emit(ctx, f"docs.{kind}", object_type, target, payload)
