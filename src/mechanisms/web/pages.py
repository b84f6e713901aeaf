"""The web UI shell: sign-in, the home page, the audit trail, teams, tokens and the
event deliveries page. Server-rendered with Jinja2; htmx for partial updates."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader

from mechanisms import modules
from mechanisms.core import accounts, audit, signin, webhooks
from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, MechanismsError
from mechanisms.core.identity import ANONYMOUS, Role
from mechanisms.core.permissions import site_role
from mechanisms.web import attention
from mechanisms.web.http import (
    SESSION_COOKIE,
    UnitOfWorkRoute,
    authenticate,
    check_csrf,
)
from mechanisms.web.security import secure_cookies

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
LOGIN_CSRF_COOKIE = "mech_login_csrf"

templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
_registered_prefixes: set[str] = set()


def register_templates(prefix: str, directory: Path) -> None:
    """Let the shared renderer find a mechanism's templates as ``<prefix>/<name>.html``
    (they extend the shell's base.html), without the shell knowing the mechanism."""
    if prefix in _registered_prefixes:
        return
    env = templates.env
    env.loader = ChoiceLoader(
        [env.loader, PrefixLoader({prefix: FileSystemLoader(str(directory))})]  # type: ignore[list-item]
    )
    _registered_prefixes.add(prefix)


class LoginRequired(MechanismsError):
    status = 401
    code = "login_required"


def page_ctx(request: Request) -> Ctx:
    """Who is looking at the page; anonymous visitors are sent to the sign-in page."""
    principal, csrf = authenticate(request)
    if not principal.is_authenticated:
        raise LoginRequired("sign in to see this page")
    request.state.principal = principal
    request.state.csrf_token = csrf
    return Ctx(request.state.db_session, principal, request.app.state.clock.now())


def form_ctx(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> Ctx:
    """A page form post: signed in, and carrying the session's CSRF token (as the htmx
    header or, without JavaScript, as a hidden field)."""
    ctx = page_ctx(request)
    check_csrf(request, request.state.csrf_token, csrf_token)
    return ctx


PageCtx = Annotated[Ctx, Depends(page_ctx)]
FormCtx = Annotated[Ctx, Depends(form_ctx)]


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    return templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "csrf_token": getattr(request.state, "csrf_token", None),
            "mechanisms": modules.MECHANISMS,
            "section": values.pop("section", None),
            **values,
        },
        status_code=status_code,
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def done(request: Request, url: str) -> Response:
    """After a form action: htmx follows HX-Redirect, a plain form post a 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a link send people elsewhere after sign-in.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


# --- sign-in ------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", next=_safe_next(next), login_csrf=token, section="login"
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=3600,
    )
    return response


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    login_csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def again(message: str, status: int) -> Response:
        return render(
            request,
            "login.html",
            status_code=status,
            error=message,
            username=username,
            next=_safe_next(next),
            login_csrf=login_csrf,
            section="login",
        )

    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not login_csrf or cookie_token != login_csrf:
        return again("Your sign-in form expired. Please try again.", 403)
    settings = request.app.state.settings
    state = request.app.state
    address = signin.client_address(request.client.host if request.client else None)
    # A transaction of its own that commits a failure too: the count and the audit record
    # of a wrong password must outlive the refusal.
    with state.db.transaction() as session:
        attempt = signin.sign_in(
            Ctx(session, ANONYMOUS, state.clock.now()),
            username,
            password,
            address,
            timedelta(hours=settings.session_hours),
        )
    if attempt.retry_after is not None:
        minutes = math.ceil(attempt.retry_after / 60)
        response = again(
            "Too many failed sign-ins. Try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}.",
            429,
        )
        response.headers["Retry-After"] = str(attempt.retry_after)
        return response
    if attempt.cookie is None:
        return again("wrong username or password", 401)
    secure = secure_cookies(request)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        attempt.cookie,
        httponly=True,
        samesite="lax",
        secure=secure,
        max_age=settings.session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, secure=secure, httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request, ctx: FormCtx) -> Response:
    session_id = getattr(request.state, "web_session_id", None)
    if session_id is not None:
        accounts.logout(ctx, session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, secure=secure_cookies(request), httponly=True)
    return response


# --- home ---------------------------------------------------------------------------


@router.get("/")
def home(request: Request, ctx: PageCtx) -> Response:
    items = attention.collect(ctx)
    memberships = (
        accounts.memberships_of(ctx.session, ctx.principal.user_id) if ctx.principal.user_id else []
    )
    return render(
        request,
        "home.html",
        items=items,
        memberships=memberships,
        section="home",
        role=site_role(ctx),
    )


# --- audit --------------------------------------------------------------------------


_LATEST = datetime.max.replace(tzinfo=UTC)


def _parse_when(field: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} must be a date or date-time", details={"field": field}
        ) from None
    # The form's dates carry no offset; the trail is kept and shown in UTC.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Before year 1 or after year 9999 in UTC (0001-01-01T00:00+14:00): before or after
        # every record, as the earliest or latest instant is.
        return datetime.min.replace(tzinfo=UTC) if parsed.year == 1 else _LATEST


@router.get("/audit")
def audit_page(
    request: Request,
    ctx: PageCtx,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    flt = audit.AuditFilter(
        actor=actor or None,
        action=action or None,
        object_type=object_type or None,
        object_id=object_id or None,
        since=_parse_when("since", since),
        until=_parse_when("until", until),
        before_seq=before_seq,
        limit=50,
    )
    records = audit.browse_for(ctx, flt)
    values = {
        "records": records,
        "filters": {
            "actor": actor or "",
            "action": action or "",
            "object_type": object_type or "",
            "object_id": object_id or "",
            "since": since or "",
            "until": until or "",
        },
        "next_before_seq": records[-1].seq if len(records) == flt.limit else None,
    }
    # A filter change or "older" click from htmx only needs the rows.
    if is_htmx(request) and request.headers.get("hx-target") in ("audit-rows", "audit-more"):
        return render(request, "audit_rows.html", **values)
    return render(request, "audit.html", section="audit", **values)


# --- teams --------------------------------------------------------------------------


@router.get("/teams")
def teams_page(request: Request, ctx: PageCtx) -> Response:
    teams = accounts.list_teams(ctx)
    members = {t.slug: accounts.team_members(ctx, t.slug) for t in teams}
    by_parent: dict[int | None, list[Any]] = {}
    for team in teams:
        by_parent.setdefault(team.parent_id, []).append(team)
    return render(
        request,
        "teams.html",
        section="teams",
        by_parent=by_parent,
        members=members,
        roles=[r.label for r in Role],
    )


# --- profile and tokens -------------------------------------------------------------


def _my_tokens(ctx: Ctx) -> list[Any]:
    return accounts.list_tokens(ctx, ctx.principal.username) if ctx.principal.user_id else []


@router.get("/profile")
def profile_page(request: Request, ctx: PageCtx) -> Response:
    return render(
        request,
        "profile.html",
        section="profile",
        tokens=_my_tokens(ctx),
        scopes=[r.label for r in Role if r <= ctx.principal.scope],
    )


@router.post("/profile/tokens")
def create_token_form(
    request: Request,
    ctx: FormCtx,
    name: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[str, Form(max_length=16)] = "engineer",
    expires_days: Annotated[int | None, Form(ge=1, le=3650)] = None,
) -> Response:
    expires = ctx.now + timedelta(days=expires_days) if expires_days else None
    token, secret = accounts.create_token(ctx, ctx.principal.username, name, scope, expires)
    return render(
        request,
        "tokens_table.html",
        tokens=_my_tokens(ctx),
        new_token=secret,
        new_token_name=token.name,
    )


@router.post("/profile/tokens/{token_id}/revoke")
def revoke_token_form(request: Request, token_id: int, ctx: FormCtx) -> Response:
    accounts.revoke_token(ctx, token_id)
    return render(request, "tokens_table.html", tokens=_my_tokens(ctx))


# --- events and webhooks ------------------------------------------------------------


@router.get("/events")
def events_page(
    request: Request,
    ctx: PageCtx,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    status = status or None
    return render(
        request,
        "events.html",
        section="events",
        hooks=webhooks.list_all(ctx),
        counts=webhooks.delivery_counts(ctx),
        deliveries=webhooks.list_deliveries(ctx, status, 100),
        status=status or "",
    )


@router.post("/events/webhooks")
def create_webhook_form(
    request: Request,
    ctx: FormCtx,
    url: Annotated[str, Form(max_length=2000)] = "",
    event_types: Annotated[str, Form(max_length=2000)] = "*",
    description: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    hook, secret = webhooks.create(ctx, url, event_types.replace(",", " ").split(), description)
    return render(
        request,
        "webhooks_table.html",
        hooks=webhooks.list_all(ctx),
        new_secret=secret,
        new_hook=hook,
    )


@router.post("/events/webhooks/{webhook_id}/toggle")
def toggle_webhook_form(request: Request, webhook_id: int, ctx: FormCtx) -> Response:
    hook = webhooks.get(ctx, webhook_id)
    webhooks.set_active(ctx, webhook_id, not hook.active)
    return render(request, "webhooks_table.html", hooks=webhooks.list_all(ctx))


@router.post("/events/deliveries/{delivery_id}/retry")
def retry_delivery_form(request: Request, delivery_id: int, ctx: FormCtx) -> Response:
    webhooks.retry_dead(ctx, delivery_id)
    return render(request, "delivery_row.html", d=webhooks.get_delivery(ctx, delivery_id))


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in ("GET", "HEAD"):
        # A form endpoint would answer the GET that follows sign-in with 405.
        target = "/"
    if is_htmx(request):
        # Come back to the page the person was on, not to the fragment or form endpoint
        # htmx called.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        if current.path:
            target = current.path + (f"?{current.query}" if current.query else "")
        return Response(status_code=401, headers={"HX-Redirect": f"/login?next={quote(target)}"})
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def render_error(request: Request, status: int, code: str, message: str) -> Response:
    """How a page shows a refusal: sign-in for anonymous visitors, a message in the page's
    flash area for htmx requests, a whole error page otherwise."""
    if code in ("login_required", "not_authenticated") and not getattr(
        request.state, "principal", None
    ):
        return login_redirect(request)
    if is_htmx(request):
        return Response(message, status_code=status, media_type="text/plain")
    return render(
        request, "error.html", status_code=status, status=status, code=code, message=message
    )
