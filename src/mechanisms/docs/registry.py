"""The registry of decision docs: create (from a template), upload and sync Markdown,
versions and their diffs, people, tags, typed links, the status machine and search.

Every change writes its audit record and its ``docs.*`` event in the caller's transaction;
anything refused is refused before anything is written (decision 0016)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_team_role
from mechanisms.docs import access, diffs, document, lifecycle, links, reviews
from mechanisms.docs.check import check_document
from mechanisms.docs.tables import (
    DocLink,
    DocPerson,
    DocTag,
    Document,
    DocVersion,
    SearchTerm,
)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_TITLE = 300
# Words the pages and the API use after /docs/: no doc may be called by them.
RESERVED_SLUGS = frozenset(
    {"new", "queue", "load", "loads", "meetings", "comments", "upload", "sync"}
)
MAX_PEOPLE = 50
MAX_TAGS = 30
MAX_LINKS = 50


def doc_length(body: str) -> tuple[int, float]:
    """(words, reading minutes) as ``mech doc check`` counts them: prose only, so code
    blocks, tables and front matter add no reading time."""
    stats = check_document(body).stats
    return stats.words, round(stats.reading_minutes, 1)


# --- reading ---------------------------------------------------------------------------


def get(ctx: Ctx, ref: str | int) -> Document:
    access.require_reader(ctx)
    return access.get(ctx, ref)


def version(ctx: Ctx, doc: Document, number: int | None = None) -> DocVersion:
    return reviews._version(ctx, doc, number)


def versions(ctx: Ctx, ref: str | int) -> list[DocVersion]:
    doc = get(ctx, ref)
    return list(
        ctx.session.execute(
            select(DocVersion).where(DocVersion.doc_id == doc.id).order_by(DocVersion.number)
        ).scalars()
    )


def tags_of(ctx: Ctx, doc: Document) -> list[str]:
    return list(
        ctx.session.execute(
            select(DocTag.tag).where(DocTag.doc_id == doc.id).order_by(DocTag.tag)
        ).scalars()
    )


def links_of(ctx: Ctx, doc: Document) -> list[DocLink]:
    return list(
        ctx.session.execute(
            select(DocLink).where(DocLink.doc_id == doc.id).order_by(DocLink.kind, DocLink.ref)
        ).scalars()
    )


def snapshot(ctx: Ctx, doc: Document) -> dict[str, Any]:
    """A doc as the API, the CLI and the audit trail show it."""
    successor = ctx.session.get(Document, doc.superseded_by_id) if doc.superseded_by_id else None
    predecessor = ctx.session.get(Document, doc.supersedes_id) if doc.supersedes_id else None
    current = version(ctx, doc)
    return {
        "id": doc.id,
        "slug": doc.slug,
        "key": doc.source_key,
        "title": doc.title,
        "status": doc.status,
        "door": doc.door,
        "team": doc.team,
        "author": doc.author,
        "owners": access.owners(ctx, doc),
        "reviewers": access.people(ctx, doc, access.REVIEWER),
        "tags": tags_of(ctx, doc),
        "links": [{"kind": link.kind, "ref": link.ref} for link in links_of(ctx, doc)],
        "version": doc.current_version,
        "words": current.words,
        "reading_minutes": current.reading_minutes,
        "superseded_by": successor.slug if successor else None,
        "supersedes": predecessor.slug if predecessor else None,
        "decided_by": doc.decided_by,
        "decided_at": doc.decided_at.isoformat() if doc.decided_at else None,
        "decision_note": doc.decision_note,
        "submitted_at": doc.submitted_at.isoformat() if doc.submitted_at else None,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
        "actions": lifecycle.allowed_actions(doc.status),
    }


# --- checking input ----------------------------------------------------------------------


def _title(value: str) -> str:
    value = document.check_text(value, "title", MAX_TITLE).strip()
    if not value:
        raise InvalidInput("a doc needs a title", details={"field": "title"})
    return value


def _slug(ctx: Ctx, value: str, doc: Document | None = None) -> str:
    if not SLUG_RE.match(value):
        raise InvalidInput(
            f"slug {value!r} must be lowercase letters, digits and dashes (at most 100)",
            details={"field": "slug"},
        )
    if value.isdigit():
        raise InvalidInput(
            "a slug cannot be only digits (it would read as an id)", details={"field": "slug"}
        )
    taken = access.find(ctx, value)
    if taken is not None and (doc is None or taken.id != doc.id):
        raise Conflict(
            f"slug {value!r} is taken by another doc",
            code="duplicate_slug",
            details={"field": "slug"},
        )
    return value


def _free_slug(ctx: Ctx, base: str) -> str:
    """A slug made from a title: the title's, or with -2, -3 … when another doc has it (a
    slug the author chose is never changed: a taken one is refused)."""
    base = base if base not in RESERVED_SLUGS and not base.isdigit() else f"{base}-doc"
    candidate, n = base, 1
    while access.find(ctx, candidate) is not None:
        n += 1
        candidate = f"{base[:95]}-{n}"
    return candidate


def _usernames(ctx: Ctx, names: Iterable[str], field_name: str) -> list[str]:
    found = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        if accounts.find_user(ctx.session, name) is None:
            raise InvalidInput(f"{field_name}: no user {name!r}", details={"field": field_name})
        found.append(name)
    if len(found) > MAX_PEOPLE:
        raise InvalidInput(f"{field_name}: at most {MAX_PEOPLE}", details={"field": field_name})
    return found


def _tags(names: Iterable[str]) -> list[str]:
    tags = list(dict.fromkeys(t.strip().lower() for t in names if t.strip()))
    for tag in tags:
        if not TAG_RE.match(tag):
            raise InvalidInput(
                f"tag {tag!r} must be letters, digits, '.', '_' or '-' (at most 64)",
                details={"field": "tags"},
            )
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", details={"field": "tags"})
    return tags


def _body(body: str) -> str:
    return document.check_text(body, "body")


def _team(ctx: Ctx, slug: str | None) -> str | None:
    if not slug:
        return None
    team = accounts.find_team(ctx.session, slug)
    if team is None:
        raise InvalidInput(f"no team {slug!r}", details={"field": "team"})
    require_team_role(ctx, team.id, Role.ENGINEER)
    return team.slug


# --- writing ---------------------------------------------------------------------------


def _write_version(
    ctx: Ctx, doc: Document, number: int, title: str, body: str, note: str
) -> DocVersion:
    words, minutes = doc_length(body)
    row = DocVersion(
        doc_id=doc.id,
        number=number,
        title=title,
        body=body,
        digest=hashlib.sha256(body.encode()).hexdigest(),
        words=words,
        reading_minutes=minutes,
        note=note,
        created_by=ctx.principal.actor,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    _index(ctx, doc, title, body)
    return row


def _set_people(ctx: Ctx, doc: Document, role: str, names: list[str]) -> None:
    ctx.session.execute(delete(DocPerson).where(DocPerson.doc_id == doc.id, DocPerson.role == role))
    ctx.session.add_all(DocPerson(doc_id=doc.id, username=n, role=role) for n in names)
    ctx.session.flush()


def _set_tags(ctx: Ctx, doc: Document, tags: list[str]) -> None:
    ctx.session.execute(delete(DocTag).where(DocTag.doc_id == doc.id))
    ctx.session.add_all(DocTag(doc_id=doc.id, tag=t) for t in tags)
    ctx.session.flush()


def _checked_links(ctx: Ctx, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    checked = list(dict.fromkeys(links.check(ctx, kind, ref) for kind, ref in pairs))
    if len(checked) > MAX_LINKS:
        raise InvalidInput(f"at most {MAX_LINKS} links", details={"field": "links"})
    return checked


def _add_links(ctx: Ctx, doc: Document, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    existing = {(link.kind, link.ref) for link in links_of(ctx, doc)}
    added = [p for p in pairs if p not in existing]
    ctx.session.add_all(
        DocLink(doc_id=doc.id, kind=k, ref=r, created_by=ctx.principal.actor, created_at=ctx.now)
        for k, r in added
    )
    ctx.session.flush()
    return added


@dataclass
class NewDoc:
    """What a new doc is made of; every field but the title is optional."""

    title: str
    body: str | None = None
    template: str | None = None
    slug: str | None = None
    team: str | None = None
    owners: Sequence[str] = ()
    reviewers: Sequence[str] = ()
    tags: Sequence[str] = ()
    links: Sequence[tuple[str, str]] = ()
    key: str | None = None


def create(ctx: Ctx, new: NewDoc) -> Document:
    """A draft: its body as given, or the template (the decision-doc one by default)."""
    access.require_writer(ctx)
    title = _title(new.title)
    if new.body is not None and new.template is not None:
        raise InvalidInput("give a body or a template, not both", details={"field": "template"})
    if new.template is not None:
        document.check_text(new.template, "template")
    body = _body(new.body) if new.body is not None else document.from_template(new.template, title)
    slug = _slug(ctx, new.slug or _free_slug(ctx, document.slugify(title) or "doc"))
    team = _team(ctx, new.team)
    owners = _usernames(ctx, new.owners, "owners")
    reviewers = _usernames(ctx, new.reviewers, "reviewers")
    tags = _tags(new.tags)
    checked_links = _checked_links(ctx, new.links)
    if new.key is not None:
        _check_key(ctx, new.key)
    doc = Document(
        slug=slug,
        source_key=new.key,
        title=title,
        status=lifecycle.DRAFT,
        team=team,
        author=ctx.principal.username,
        current_version=1,
        decision_note="",
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(doc)
    ctx.session.flush()
    _set_people(ctx, doc, access.OWNER, owners)
    _set_people(ctx, doc, access.REVIEWER, reviewers)
    _set_tags(ctx, doc, tags)
    _add_links(ctx, doc, checked_links)
    _write_version(ctx, doc, 1, title, body, "created")
    access.record(ctx, "created", doc, after=snapshot(ctx, doc))
    return doc


def _check_key(ctx: Ctx, key: str) -> None:
    if not key.strip() or len(key) > 300 or "\x00" in key:
        raise InvalidInput("a doc's key is 1 to 300 characters", details={"field": "key"})
    taken = ctx.session.execute(select(Document.id).where(Document.source_key == key)).first()
    if taken is not None:
        raise Conflict(
            f"key {key!r} names another doc", code="duplicate_key", details={"field": "key"}
        )


def revise(
    ctx: Ctx, ref: str | int, body: str, title: str | None = None, note: str = ""
) -> DocVersion | None:
    """A new version when the text changed (None when it did not); anchored comments are
    re-located on it."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    lifecycle.require_editable(doc.status)
    body = _body(body)
    note = document.check_text(note, "note", 2000)
    title = _title(title) if title is not None else doc.title
    current = version(ctx, doc)
    if current.body == body and title == doc.title:
        return None
    before = snapshot(ctx, doc)
    number = doc.current_version + 1
    doc.current_version, doc.title, doc.updated_at = number, title, ctx.now
    row = _write_version(ctx, doc, number, title, body, note)
    anchored = reviews.reanchor(ctx, doc, body, number)
    access.record(
        ctx,
        "revised",
        doc,
        before=before,
        after=snapshot(ctx, doc),
        details={"version": number, "anchors": anchored, **diffs.stats(current.body, body)},
    )
    return row


@dataclass
class Changes:
    """What to change about a doc besides its text; None leaves a field as it is."""

    owners: Sequence[str] | None = None
    reviewers: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    slug: str | None = None


def update(ctx: Ctx, ref: str | int, changes: Changes) -> Document:
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    before = snapshot(ctx, doc)
    owners = _usernames(ctx, changes.owners, "owners") if changes.owners is not None else None
    reviewers = (
        _usernames(ctx, changes.reviewers, "reviewers") if changes.reviewers is not None else None
    )
    tags = _tags(changes.tags) if changes.tags is not None else None
    slug = _slug(ctx, changes.slug, doc) if changes.slug is not None else None
    if owners is not None:
        _set_people(ctx, doc, access.OWNER, owners)
    if reviewers is not None:
        lifecycle.require_editable(doc.status)
        _set_people(ctx, doc, access.REVIEWER, reviewers)
    if tags is not None:
        _set_tags(ctx, doc, tags)
        _index(ctx, doc, doc.title, version(ctx, doc).body)
    if slug is not None:
        doc.slug = slug
    ctx.session.flush()
    if _differs(before, snapshot(ctx, doc)):
        doc.updated_at = ctx.now
        ctx.session.flush()
        access.record(ctx, "updated", doc, before=before, after=snapshot(ctx, doc))
    return doc


def _differs(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a doc changed, not counting the stamp of its last change."""
    return {**before, "updated_at": None} != {**after, "updated_at": None}


def link(ctx: Ctx, ref: str | int, kind: str, target: str) -> DocLink:
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    pair = links.check(ctx, kind, target)
    if not _add_links(ctx, doc, [pair]):
        raise Conflict(f"{doc.slug} already links {pair[0]}:{pair[1]}", code="duplicate_link")
    access.record(ctx, "linked", doc, details={"kind": pair[0], "ref": pair[1]})
    return next(link for link in links_of(ctx, doc) if (link.kind, link.ref) == pair)


def unlink(ctx: Ctx, ref: str | int, kind: str, target: str) -> None:
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    removed = ctx.session.execute(
        delete(DocLink).where(DocLink.doc_id == doc.id, DocLink.kind == kind, DocLink.ref == target)
    ).rowcount
    if not removed:
        raise NotFound(f"{doc.slug} has no link {kind}:{target}", details={"field": "link"})
    access.record(ctx, "unlinked", doc, details={"kind": kind, "ref": target})


# --- the status machine ----------------------------------------------------------------


def _move(ctx: Ctx, doc: Document, action: str, kind: str, **details: Any) -> Document:
    to = lifecycle.target(doc.status, action)
    before = snapshot(ctx, doc)
    doc.status, doc.updated_at = to, ctx.now
    ctx.session.flush()
    access.record(ctx, kind, doc, before=before, after=snapshot(ctx, doc), details=details)
    return doc


def submit(ctx: Ctx, ref: str | int) -> Document:
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    lifecycle.target(doc.status, "submit")
    doc.submitted_at = ctx.now
    return _move(
        ctx, doc, "submit", "submitted", reviewers=access.people(ctx, doc, access.REVIEWER)
    )


def withdraw(ctx: Ctx, ref: str | int) -> Document:
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_editor(ctx, doc)
    return _move(ctx, doc, "withdraw", "withdrawn")


class DecisionBlocked(Conflict):
    code = "decision_blocked"


def decide(
    ctx: Ctx, ref: str | int, outcome: str, door: str | None = None, note: str = ""
) -> Document:
    """Accept or reject a doc in review; refused with every reason when any question is
    unanswered or any required reviewer has not recorded a review."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    access.require_decider(ctx, doc)
    if outcome not in lifecycle.OUTCOMES:
        raise InvalidInput(
            f"a decision is {' or '.join(lifecycle.OUTCOMES)} (got {outcome!r})",
            details={"field": "outcome"},
        )
    if door is not None and door not in lifecycle.DOORS:
        raise InvalidInput(f"door is one_way or two_way (got {door!r})", details={"field": "door"})
    if outcome == lifecycle.ACCEPTED and door is None:
        raise InvalidInput(
            "say whether the accepted decision is a one_way or a two_way door",
            details={"field": "door"},
        )
    note = document.check_text(note, "note", 4000).strip()
    found = reviews.blockers(ctx, doc)
    if found:
        raise DecisionBlocked(
            f"{doc.slug} cannot be decided yet: " + "; ".join(b.message for b in found),
            details={"reasons": [b.as_dict() for b in found]},
        )
    doc.door, doc.decided_by, doc.decided_at, doc.decision_note = (
        door,
        ctx.principal.username,
        ctx.now,
        note,
    )
    action = "accept" if outcome == lifecycle.ACCEPTED else "reject"
    return _move(ctx, doc, action, "decided", outcome=outcome, door=door, note=note)


def supersede(ctx: Ctx, ref: str | int, successor_ref: str | int, note: str = "") -> Document:
    """An accepted doc is superseded by its successor; both point at each other."""
    access.require_writer(ctx)
    doc = access.lock(ctx, ref)
    successor = access.lock(ctx, successor_ref)
    access.require_editor(ctx, successor)
    if successor.id == doc.id:
        raise InvalidInput("a doc cannot supersede itself", details={"field": "successor"})
    if successor.supersedes_id not in (None, doc.id):
        raise Conflict(
            f"{successor.slug} already supersedes another doc", code="already_supersedes"
        )
    if successor.status in (lifecycle.REJECTED, lifecycle.SUPERSEDED):
        raise lifecycle.InvalidTransition(
            f"{successor.slug} is {successor.status}; a successor is a draft, in review or accepted"
        )
    lifecycle.target(doc.status, "supersede")
    note = document.check_text(note, "note", 4000).strip()
    doc.superseded_by_id = successor.id
    successor.supersedes_id = doc.id
    successor.updated_at = ctx.now
    _move(ctx, doc, "supersede", "superseded", successor=successor.slug, note=note)
    access.record(ctx, "supersedes", successor, details={"predecessor": doc.slug}, event=False)
    return doc


# --- upload and sync ----------------------------------------------------------------------


@dataclass
class Upserted:
    doc: Document
    outcome: str  # created | updated | unchanged


def upsert_markdown(ctx: Ctx, text: str, path: str | None = None) -> Upserted:
    """A Markdown file into the registry: the doc its front matter ``id`` (or, without one,
    its path) names is revised; a new key makes a new draft. Idempotent."""
    access.require_writer(ctx)
    parsed = document.parse(document.check_text(text, "file"))
    key = parsed.key or path
    title = parsed.title or document.title_of(parsed.body)
    if not title:
        raise InvalidInput(
            f"{path or 'the file'} has no title: start it with a '# ' heading or give "
            "'title' in its front matter",
            code="no_title",
            details={"field": "file"},
        )
    existing = (
        ctx.session.execute(select(Document).where(Document.source_key == key)).scalar_one_or_none()
        if key
        else None
    )
    if existing is None:
        doc = create(
            ctx,
            NewDoc(
                title=title,
                body=parsed.body,
                slug=parsed.slug,
                team=parsed.team,
                owners=parsed.owners,
                reviewers=parsed.reviewers,
                tags=parsed.tags,
                links=parsed.links,
                key=key,
            ),
        )
        return Upserted(doc, "created")
    changed = False
    if existing.status in lifecycle.EDITABLE:
        changed = (
            revise(
                ctx,
                existing.id,
                parsed.body,
                title=_title(title),
                note=f"synced from {path or key}",
            )
            is not None
        )
    elif version(ctx, existing).body != parsed.body:
        lifecycle.require_editable(existing.status)
    before = snapshot(ctx, existing)
    update(
        ctx,
        existing.id,
        Changes(
            owners=parsed.owners or None,
            reviewers=(parsed.reviewers or None) if existing.status in lifecycle.EDITABLE else None,
            tags=parsed.tags or None,
        ),
    )
    new_links = [
        p
        for p in _checked_links(ctx, parsed.links)
        if p not in {(lk.kind, lk.ref) for lk in links_of(ctx, existing)}
    ]
    if new_links:
        _add_links(ctx, existing, new_links)
        access.record(
            ctx, "linked", existing, details={"links": [f"{k}:{r}" for k, r in new_links]}
        )
    changed = changed or _differs(before, snapshot(ctx, existing))
    return Upserted(existing, "updated" if changed else "unchanged")


def upload(ctx: Ctx, raw: bytes, filename: str | None = None) -> Upserted:
    return upsert_markdown(ctx, document.decode(raw, filename or "the file"), filename)


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def sync(ctx: Ctx, files: Sequence[tuple[str, bytes]]) -> SyncReport:
    """Every file upserted in one transaction: one bad file refuses the whole sync (the
    error names it), so a directory is never half-synced."""
    access.require_writer(ctx)
    report = SyncReport()
    for path, raw in sorted(files):
        try:
            result = upload(ctx, raw, path)
        except (InvalidInput, Conflict) as exc:
            if path not in exc.message:
                exc.message = f"{path}: {exc.message}"
                exc.args = (exc.message,)
            raise
        getattr(report, result.outcome).append(result.doc.slug)
    return report


# --- listing and search -----------------------------------------------------------------------


def _index(ctx: Ctx, doc: Document, title: str, body: str) -> None:
    ctx.session.execute(delete(SearchTerm).where(SearchTerm.doc_id == doc.id))
    weights = document.term_weights(title, tags_of(ctx, doc), body)
    ctx.session.add_all(SearchTerm(doc_id=doc.id, term=t, weight=w) for t, w in weights.items())
    ctx.session.flush()


@dataclass
class Filters:
    status: str | None = None
    tag: str | None = None
    author: str | None = None
    q: str | None = None
    limit: int = 100


def list_docs(ctx: Ctx, flt: Filters) -> list[tuple[Document, float | None]]:
    """Docs matching the filters: ranked by relevance when searching, newest first else."""
    access.require_reader(ctx)
    if flt.status is not None and flt.status not in lifecycle.STATUSES:
        raise InvalidInput(
            f"unknown status {flt.status!r}; the statuses are {', '.join(lifecycle.STATUSES)}",
            details={"field": "status"},
        )
    if not 1 <= flt.limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", details={"field": "limit"})
    query = select(Document).where(access.visible(ctx))
    if flt.status:
        query = query.where(Document.status == flt.status)
    if flt.author:
        query = query.where(Document.author == flt.author)
    if flt.tag:
        query = query.where(
            Document.id.in_(select(DocTag.doc_id).where(DocTag.tag == flt.tag.lower()))
        )
    if flt.q and flt.q.strip():
        return _search(
            ctx, query, document.parse_query(document.check_text(flt.q, "q", 500)), flt.limit
        )
    rows = ctx.session.execute(
        query.order_by(Document.updated_at.desc(), Document.id.desc()).limit(flt.limit)
    )
    return [(doc, None) for doc in rows.scalars()]


def _search(
    ctx: Ctx, base: Any, query: document.Query, limit: int
) -> list[tuple[Document, float | None]]:
    """Every required term must occur; the score sums each term's weight times its inverse
    document frequency (the same arithmetic on both backends, decision 0016)."""
    if query.empty:
        return []
    total = ctx.session.execute(select(func.count()).select_from(Document)).scalar_one() or 1
    frequency = dict(
        ctx.session.execute(
            select(SearchTerm.term, func.count())
            .where(SearchTerm.term.in_(query.required))
            .group_by(SearchTerm.term)
        ).all()
    )
    if any(term not in frequency for term in query.required):
        return []
    hits = (
        select(SearchTerm.doc_id)
        .where(SearchTerm.term.in_(query.required))
        .group_by(SearchTerm.doc_id)
        .having(func.count() == len(query.required))
    )
    candidates = base.where(Document.id.in_(hits))
    if query.excluded:
        candidates = candidates.where(
            Document.id.not_in(select(SearchTerm.doc_id).where(SearchTerm.term.in_(query.excluded)))
        )
    docs = list(ctx.session.execute(candidates).scalars())
    if query.phrases:
        docs = [d for d in docs if _has_phrases(ctx, d, query.phrases)]
    weights: dict[int, float] = {}
    for doc_id, term, weight in ctx.session.execute(
        select(SearchTerm.doc_id, SearchTerm.term, SearchTerm.weight).where(
            SearchTerm.doc_id.in_([d.id for d in docs]), SearchTerm.term.in_(query.required)
        )
    ):
        idf = math.log(1 + total / frequency[term])
        weights[doc_id] = weights.get(doc_id, 0.0) + weight * idf
    ranked = sorted(docs, key=lambda d: (-weights.get(d.id, 0.0), d.id))
    return [(d, round(weights.get(d.id, 0.0), 4)) for d in ranked[:limit]]


def _has_phrases(ctx: Ctx, doc: Document, phrases: list[str]) -> bool:
    text = document.normalise_phrase(doc.title + " " + version(ctx, doc).body)
    return all(p in text for p in phrases)


def diff(ctx: Ctx, ref: str | int, old: int, new: int | None = None) -> dict[str, Any]:
    doc = get(ctx, ref)
    a, b = version(ctx, doc, old), version(ctx, doc, new)
    return {
        "doc": doc.slug,
        "from": a.number,
        "to": b.number,
        "unified": diffs.unified(
            a.body, b.body, f"{doc.slug}@{a.number}", f"{doc.slug}@{b.number}"
        ),
        "rows": diffs.side_by_side(a.body, b.body),
        "inline": diffs.inline(a.body, b.body),
        **diffs.stats(a.body, b.body),
    }
