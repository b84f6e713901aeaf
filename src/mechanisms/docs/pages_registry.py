"""The docs web UI for the registry and reviews: the registry with its filters, a doc with
its comments in the margin by paragraph, version history and diffs, the review queue, the
review meeting with its reading timer, and everyone's reading load.

Pages call the docs services only, so authorisation stays there: a form shows to whoever
might act, and the service refuses the rest (the refusal shows in the page)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from mechanisms.core.errors import InvalidInput
from mechanisms.docs import access, anchors, document, lifecycle, reading, registry, reviews
from mechanisms.web import pages as web
from mechanisms.web.http import RowId, Text, UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx, done

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
web.register_templates("docs", TEMPLATES_DIR)

Slug = Annotated[str, Query(min_length=1, max_length=100)]
Filter = Annotated[str | None, Query(max_length=100)]
Words = Annotated[Text, Form(max_length=reviews.MAX_COMMENT)]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


H = SimpleNamespace(when=_when, status=lambda s: s.replace("_", " "))


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    return web.render(
        request, f"docs/{template}", status_code=status_code, section="docs", h=H, **values
    )


def _names(text: str) -> list[str]:
    return [n for n in text.replace(",", " ").split() if n]


def _doc_url(slug: str) -> str:
    return f"/docs/{quote(slug)}"


# --- the registry ---------------------------------------------------------------------


@router.get("/docs")
def registry_page(
    request: Request,
    ctx: PageCtx,
    status: Filter = None,
    tag: Filter = None,
    author: Filter = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    flt = registry.Filters(status or None, tag or None, author or None, q or None)
    rows = [(registry.snapshot(ctx, d), s) for d, s in registry.list_docs(ctx, flt)]
    values = {
        "rows": rows,
        "filters": {"status": status or "", "tag": tag or "", "author": author or "", "q": q or ""},
        "statuses": lifecycle.STATUSES,
    }
    if web.is_htmx(request) and request.headers.get("hx-target") == "doc-rows":
        return render(request, "doc_rows.html", **values)
    return render(request, "registry.html", tab="registry", **values)


@router.get("/docs/new")
def new_page(request: Request, ctx: PageCtx) -> Response:
    access.require_reader(ctx)
    return render(request, "new.html", tab="new", starter=document.DEFAULT_TEMPLATE)


@router.post("/docs/new")
def create_form(
    request: Request,
    ctx: FormCtx,
    title: Annotated[Text, Form(max_length=300)] = "",
    slug: Annotated[Text, Form(max_length=100)] = "",
    team: Annotated[Text, Form(max_length=64)] = "",
    template: Annotated[Text, Form(max_length=document.MAX_BODY_CHARS)] = "",
    owners: Annotated[Text, Form(max_length=2000)] = "",
    reviewers: Annotated[Text, Form(max_length=2000)] = "",
    tags: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    doc = registry.create(
        ctx,
        registry.NewDoc(
            title=title,
            template=template or None,
            slug=slug or None,
            team=team or None,
            owners=_names(owners),
            reviewers=_names(reviewers),
            tags=_names(tags),
        ),
    )
    return done(request, _doc_url(doc.slug))


@router.get("/docs/queue")
def queue_page(request: Request, ctx: PageCtx) -> Response:
    found = reviews.queue(ctx, ctx.principal.username)
    return render(
        request,
        "queue.html",
        tab="queue",
        to_review=[registry.snapshot(ctx, d) for d in found["to_review"]],
        questions=found["questions"],
    )


@router.get("/docs/load")
def load_page(
    request: Request,
    ctx: PageCtx,
    day: Annotated[str | None, Query(max_length=10)] = None,
    tz: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise InvalidInput("day must be a date, YYYY-MM-DD", details={"field": "day"}) from None
    loads = [x.as_dict() for x in reading.loads(ctx, when, tz or None)]
    return render(
        request,
        "load.html",
        tab="load",
        loads=loads,
        norm=reading.NORM,
        tz=tz or "",
        my_zone=reading.zone_of(ctx, ctx.principal.username),
        day=day or "",
    )


@router.post("/docs/load/zone")
def zone_form(
    request: Request, ctx: FormCtx, tz: Annotated[Text, Form(max_length=64)] = ""
) -> Response:
    reading.set_zone(ctx, tz)
    return done(request, "/docs/load")


# --- meetings -------------------------------------------------------------------------


@router.get("/docs/meetings/{meeting_id}")
def meeting_page(request: Request, meeting_id: RowId, ctx: PageCtx) -> Response:
    meeting = reading.get_meeting(ctx, meeting_id)
    snap = reading.meeting_snapshot(ctx, meeting)
    doc = access.get(ctx, meeting.doc_id)
    if web.is_htmx(request) and request.headers.get("hx-target") == "attendees":
        return render(request, "attendees.html", meeting=snap)
    return render(
        request,
        "meeting.html",
        meeting=snap,
        doc=registry.snapshot(ctx, doc),
        blocks=_blocks(registry.version(ctx, doc, meeting.version_number).body),
        me=ctx.principal.username,
    )


def _meeting_action(request: Request, meeting_id: int, act: Any) -> Response:
    act()
    return done(request, f"/docs/meetings/{meeting_id}")


@router.post("/docs/meetings/{meeting_id}/join")
def join_form(request: Request, meeting_id: RowId, ctx: FormCtx) -> Response:
    return _meeting_action(request, meeting_id, lambda: reading.join(ctx, meeting_id))


@router.post("/docs/meetings/{meeting_id}/read")
def read_form(request: Request, meeting_id: RowId, ctx: FormCtx) -> Response:
    return _meeting_action(request, meeting_id, lambda: reading.finish_reading(ctx, meeting_id))


@router.post("/docs/meetings/{meeting_id}/end")
def end_form(request: Request, meeting_id: RowId, ctx: FormCtx) -> Response:
    return _meeting_action(request, meeting_id, lambda: reading.end_meeting(ctx, meeting_id))


# --- one doc --------------------------------------------------------------------------


def _blocks(body: str, title: str | None = None) -> list[Markup]:
    """Each paragraph rendered on its own, so comments can sit beside it. markdown-it
    escapes any HTML in the doc; the result is safe to insert as is. A first heading that
    repeats ``title`` (the page's own heading) is left empty, keeping every index."""
    return [
        Markup("" if i == 0 and _repeats_title(block, title) else document.render(block))  # noqa: S704
        for i, block in enumerate(anchors.blocks(body))
    ]


def _repeats_title(block: str, title: str | None) -> bool:
    line = block.strip()
    if title is None or "\n" in line or not line.startswith("# "):
        return False
    return line[2:].strip().casefold() == title.strip().casefold()


@router.get("/docs/{slug}")
def doc_page(request: Request, slug: str, ctx: PageCtx) -> Response:
    doc = registry.get(ctx, slug)
    snap = registry.snapshot(ctx, doc)
    body = registry.version(ctx, doc).body
    threads = reviews.threads(reviews.comments(ctx, doc.id))
    by_paragraph: dict[int | None, list[Any]] = {}
    outdated = []
    for thread in threads:
        if thread.root.anchor_state == "orphaned":
            outdated.append(thread)
        else:
            by_paragraph.setdefault(thread.root.paragraph, []).append(thread)
    return render(
        request,
        "doc.html",
        doc=snap,
        blocks=_blocks(body, doc.title),
        body=body,
        by_paragraph=by_paragraph,
        outdated=outdated,
        blockers=reviews.blockers(ctx, doc),
        reviews=reviews.reviews(ctx, doc.id),
        meeting=reading.open_meeting(ctx, doc),
        me=ctx.principal.username,
        can_answer=access.is_author_or_owner(ctx, doc),
    )


@router.get("/docs/{slug}/history")
def history_page(
    request: Request,
    slug: str,
    ctx: PageCtx,
    old: Annotated[int | None, Query(alias="from", ge=1, le=1_000_000)] = None,
    new: Annotated[int | None, Query(alias="to", ge=1, le=1_000_000)] = None,
    view: Annotated[str, Query(pattern="^(side|inline|unified)$")] = "side",
) -> Response:
    doc = registry.get(ctx, slug)
    versions = registry.versions(ctx, doc.id)
    old = old or max(1, doc.current_version - 1)
    found = registry.diff(ctx, doc.id, old, new) if len(versions) > 1 else None
    return render(
        request,
        "history.html",
        doc=registry.snapshot(ctx, doc),
        versions=versions,
        diff=found,
        view=view,
    )


def _act(request: Request, slug: str, act: Any) -> Response:
    act()
    return done(request, _doc_url(slug))


@router.post("/docs/{slug}/comments")
def comment_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    body: Words = "",
    kind: Annotated[str, Form(max_length=16)] = "question",
    paragraph: Annotated[int | None, Form(ge=0, le=100_000)] = None,
) -> Response:
    return _act(request, slug, lambda: reviews.comment(ctx, slug, kind, body, paragraph))


@router.post("/docs/{slug}/comments/{comment_id}/reply")
def reply_form(
    request: Request, slug: str, comment_id: RowId, ctx: FormCtx, body: Words = ""
) -> Response:
    return _act(request, slug, lambda: reviews.reply(ctx, comment_id, body))


@router.post("/docs/{slug}/comments/{comment_id}/answer")
def answer_form(
    request: Request, slug: str, comment_id: RowId, ctx: FormCtx, body: Words = ""
) -> Response:
    return _act(request, slug, lambda: reviews.answer(ctx, comment_id, body))


@router.post("/docs/{slug}/comments/{comment_id}/resolve")
def resolve_form(request: Request, slug: str, comment_id: RowId, ctx: FormCtx) -> Response:
    return _act(request, slug, lambda: reviews.resolve(ctx, comment_id))


@router.post("/docs/{slug}/review")
def review_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    no_questions: Annotated[bool, Form()] = False,
    note: Annotated[Text, Form(max_length=4000)] = "",
) -> Response:
    return _act(
        request, slug, lambda: reviews.review(ctx, slug, no_questions=no_questions, note=note)
    )


@router.post("/docs/{slug}/transition")
def transition_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    action: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    access.require_writer(ctx)
    moves = {"submit": registry.submit, "withdraw": registry.withdraw}
    if action not in moves:
        lifecycle.target(registry.get(ctx, slug).status, action)  # names what is allowed
        raise InvalidInput(f"{action} is done with its own form", details={"field": "action"})
    return _act(request, slug, lambda: moves[action](ctx, slug))


@router.post("/docs/{slug}/decide")
def decide_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    outcome: Annotated[str, Form(max_length=16)] = "",
    door: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[Text, Form(max_length=4000)] = "",
) -> Response:
    return _act(request, slug, lambda: registry.decide(ctx, slug, outcome, door or None, note))


@router.post("/docs/{slug}/supersede")
def supersede_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    successor: Annotated[Text, Form(max_length=100)] = "",
    note: Annotated[Text, Form(max_length=4000)] = "",
) -> Response:
    return _act(request, slug, lambda: registry.supersede(ctx, slug, successor, note))


@router.post("/docs/{slug}/revise")
def revise_form(
    request: Request,
    slug: str,
    ctx: FormCtx,
    body: Annotated[Text, Form(max_length=document.MAX_BODY_CHARS)] = "",
    note: Annotated[Text, Form(max_length=2000)] = "",
) -> Response:
    return _act(request, slug, lambda: registry.revise(ctx, slug, body, note=note))


@router.post("/docs/{slug}/read")
def read_doc_form(request: Request, slug: str, ctx: FormCtx) -> Response:
    return _act(request, slug, lambda: reading.record_read(ctx, slug))


@router.post("/docs/{slug}/meetings")
def start_meeting_form(request: Request, slug: str, ctx: FormCtx) -> Response:
    meeting = reading.start_meeting(ctx, slug)
    return done(request, f"/docs/meetings/{meeting.id}")
