"""What every HTTP route shares: one transaction per request, who is asking, the error
shape, input types that behave the same on SQLite and PostgreSQL, and the guards that
run before any handler (body size, NUL bytes, metrics)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Histogram
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mechanisms.core import accounts, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import (
    Forbidden,
    InvalidInput,
    MechanismsError,
    NotAuthenticated,
    RecordedRefusal,
)
from mechanisms.core.identity import ANONYMOUS, Principal

log = logging.getLogger("mechanisms.http")

MACHINE_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/api/docs", "/api/redoc"}
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "mech_session"
CSRF_HEADER = "x-csrf-token"


# --- input types --------------------------------------------------------------------


Text = Annotated[str, AfterValidator(inputs.text)]

# A moment in time: an ISO 8601 string with an offset, normalised to UTC.
Instant = Annotated[
    AwareDatetime, BeforeValidator(inputs.parse_instant), AfterValidator(inputs.to_utc)
]

# Ids of INTEGER columns (32-bit on PostgreSQL) and of BIGINT ones: a larger number can
# name no row, and the database would refuse to even compare it.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
BigRowId = Annotated[int, Path(ge=1, le=MAX_BIG_ID)]


class Input(BaseModel):
    """Base of every request body: strict types (no "1" for 1 or 1 for true) and no
    unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


async def read_upload(request: Request, what: str) -> bytes:
    """An uploaded file: the request body itself, or the ``file`` part of a multipart form."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidInput(
                f"the form needs a file part holding the {what}", details={"field": "file"}
            )
        return await part.read()
    return await request.body()


def upload_body(media_type: str) -> dict[str, Any]:
    """The OpenAPI request body of an upload route: the file as the body, or as a form's
    ``file`` part (``read_upload`` reads either)."""
    return {
        "requestBody": {
            "content": {
                media_type: {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    }


# --- errors -------------------------------------------------------------------------


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. not_found")
    message: str = Field(description="what went wrong, for people")
    details: Any = Field(default=None, description="more about it, e.g. the field at fault")


class ErrorOut(BaseModel):
    error: ErrorInfo


def _error_doc(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description, **extra}


# Documented on every API route: the refusals any request may meet.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("malformed request (e.g. the body is not valid JSON)"),
    401: _error_doc(
        "missing, unknown, revoked or expired credentials",
        headers={"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    ),
    403: _error_doc("the caller's role or the credential's scope does not allow this"),
    404: _error_doc("no such object"),
    409: _error_doc("conflicts with the current state (e.g. already exists)"),
    413: _error_doc("the request body is too large"),
    415: _error_doc("the request body is not JSON"),
    422: _error_doc("invalid input; details name the fields at fault"),
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _is_page(request: Request) -> bool:
    """Pages answer errors in HTML; the API and machine endpoints in JSON."""
    path = request.url.path
    if path.startswith("/api/") or path in MACHINE_PATHS:
        return False
    route = request.scope.get("route")
    if route is not None:
        return not getattr(route, "include_in_schema", True)
    return "text/html" in request.headers.get("accept", "")


def refusal(
    request: Request, status: int, code: str, message: str, details: Any = None
) -> Response:
    if _is_page(request):
        return request.app.state.render_error(request, status, code, message)
    return error_response(status, code, message, details)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body",
            "problem": str(err.get("msg", "invalid")).removeprefix("Value error, "),
        }
        for err in exc.errors()
    ]


async def on_mechanisms_error(request: Request, exc: MechanismsError) -> Response:
    return refusal(request, exc.status, exc.code, exc.message, exc.details)


async def on_validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return refusal(request, 400, "malformed_json", "the request body is not valid JSON")
    # FastAPI hands the raw bytes to the model when the Content-Type is not JSON.
    if any(
        tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes)
        for err in errors
    ):
        return refusal(
            request,
            415,
            "unsupported_media_type",
            "send the request body as JSON with Content-Type: application/json",
        )
    details = _validation_details(exc)
    first = details[0] if details else {"field": "body", "problem": "invalid"}
    return refusal(request, 422, "invalid_input", f"{first['problem']} ({first['field']})", details)


HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    response = refusal(request, exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_unexpected_error(_request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred; it was logged")


async def on_out_of_range(request: Request, exc: DataError | OverflowError) -> Response:
    """A value the database cannot store (an id beyond 32 bits on PostgreSQL, beyond 64 on
    SQLite): the input's fault, caught here once for every route rather than in each."""
    log.info("refused a value the database cannot store: %s", exc)
    return refusal(
        request,
        422,
        "out_of_range",
        "a value is out of the range or longer than the database can store (ids are at most 2147483647)",
    )


async def on_client_disconnect(_request: Request, _exc: ClientDisconnect) -> Response:
    # The client went away while sending its body: nobody is left to answer.
    return Response(status_code=400)


EXCEPTION_HANDLERS: dict[Any, Callable[..., Any]] = {
    MechanismsError: on_mechanisms_error,
    DataError: on_out_of_range,
    OverflowError: on_out_of_range,
    ClientDisconnect: on_client_disconnect,
    RequestValidationError: on_validation_error,
    StarletteHTTPException: on_http_error,
    Exception: on_unexpected_error,
}


# --- who is asking ------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def authenticate(request: Request) -> tuple[Principal, str | None]:
    """The principal behind the request and, for web sessions, its CSRF token.

    Looks up credentials in short transactions of their own, before the request's
    unit of work begins, so the token's last-use stamp never waits on that work."""
    state = request.app.state
    now = state.clock.now()
    token = _bearer(request)
    if token is not None:
        with state.db.transaction(write=False) as session:
            checked = accounts.check_token(session, token, now)
        if checked.touch:
            with state.db.transaction() as session:
                accounts.touch_token(session, checked.token_id, now)
        return checked.principal, None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with state.db.transaction(write=False) as session:
            signed = accounts.signed_in(session, cookie, now)
        if signed is not None:
            request.state.web_session_id = signed.session_id
            return signed.principal, signed.csrf_token
    return ANONYMOUS, None


def check_csrf(request: Request, expected: str | None, submitted: str | None = None) -> None:
    """Browsers send the session cookie by themselves; a state change must also carry the
    session's CSRF token, which only our own pages know."""
    if request.method in SAFE_METHODS or expected is None:
        return
    submitted = submitted or request.headers.get(CSRF_HEADER)
    if not submitted or submitted != expected:
        raise Forbidden(
            "missing or wrong CSRF token; reload the page and try again", code="csrf_failed"
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _refuse_unknown_query_parameters(request: Request) -> None:
    """Like unknown body fields, an unknown query parameter is most likely a typo
    (``?staus=dead``) that would otherwise be ignored without a word."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _query_names(route.dependant))
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r}",
            details=[
                {"field": f"query.{name}", "problem": "unknown query parameter"} for name in unknown
            ],
        )


# Documents the API's authentication in the OpenAPI description; ``authenticate`` does the
# checking (this dependency never refuses by itself).
API_TOKEN = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token: `Authorization: Bearer mech_…`",
)


def request_ctx(
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(API_TOKEN)] = None,
) -> Ctx:
    """FastAPI dependency: the unit of work opened by ``UnitOfWorkRoute`` plus who acts."""
    principal, csrf = authenticate(request)
    check_csrf(request, csrf)
    _refuse_unknown_query_parameters(request)
    request.state.principal = principal
    request.state.csrf_token = csrf
    return Ctx(request.state.db_session, principal, request.app.state.clock.now())


class UnitOfWorkRoute(APIRoute):
    """One request, one transaction: committed before the response is sent when the
    handler succeeds, rolled back when it fails. Services only flush.

    Every route documents the error answers it may give (``ERROR_RESPONSES``), so each
    mechanism's API describes its refusals without repeating them."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, responses: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(
            path, endpoint, responses={**ERROR_RESPONSES, **(responses or {})}, **kwargs
        )

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def in_transaction(request: Request) -> Response:
            write = request.method not in SAFE_METHODS
            session = request.app.state.db.session(write=write)
            request.state.db_session = session
            try:
                response = await handler(request)
                if write and response.status_code < 400:
                    await run_in_threadpool(session.commit)
                else:
                    await run_in_threadpool(session.rollback)
                return response
            except RecordedRefusal:
                await run_in_threadpool(session.commit if write else session.rollback)
                raise
            except BaseException:
                await run_in_threadpool(session.rollback)
                raise
            finally:
                await run_in_threadpool(session.close)

        return in_transaction


# --- guards before routing ----------------------------------------------------------


class BodyTooLarge(StarletteHTTPException):
    """Raised while a handler reads the body. An HTTPException, because FastAPI turns any
    other error during body parsing into a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


class RequestGuards:
    """Refuses oversized bodies (413), NUL bytes in the URL (400) and JSON bodies no route
    should parse (422: nested too deep, NUL or a lone surrogate in a string) before any
    handler runs, and times every request into a Prometheus histogram by route template."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, registry: CollectorRegistry) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.latency = Histogram(
            "mech_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        try:
            refusal = self._refusal(scope)
            receive = self._limited(receive)
            if refusal is None and _may_carry_json(scope):
                body = await _read_body(receive)
                if body is None:  # the client went away while sending: nobody to answer
                    return
                refusal = _json_refusal(body)
                receive = _replay(body, receive)
            if refusal is not None:
                await refusal(scope, receive, tracking_send)
            else:
                await self.app(scope, receive, tracking_send)
        except BodyTooLarge:
            if not status["sent"]:
                await self._too_large()(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.latency.labels(scope["method"], template, str(status["code"])).observe(
                time.perf_counter() - started
            )

    def _too_large(self) -> Response:
        return error_response(
            413, "too_large", f"the request body exceeds {self.max_body_bytes} bytes"
        )

    def _refusal(self, scope: Scope) -> Response | None:
        raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in raw or b"\x00" in raw:
            return error_response(400, "bad_request", "the URL must not contain NUL characters")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return error_response(400, "bad_request", "Content-Length is not a number")
                if declared > self.max_body_bytes:
                    return self._too_large()
        return None

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive


def _may_carry_json(scope: Scope) -> bool:
    """A body that FastAPI or a route will read as JSON: one declared JSON, or one with no
    Content-Type (FastAPI parses those as JSON too)."""
    if scope["method"] in SAFE_METHODS:
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type.endswith((b"/json", b"+json"))
    return True


def _json_refusal(body: bytes) -> Response | None:
    # Python's JSON parser recurses once per level: a 10,000-deep body would raise
    # RecursionError in it, in pydantic or in the error handler. Measured before parsing.
    try:
        inputs.check_json(body)
    except inputs.JsonInputError as exc:
        return error_response(
            422,
            "invalid_input",
            f"{exc} ({exc.field})",
            [{"field": exc.field, "problem": str(exc)}],
        )
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None if the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app after the guard read the whole body: the body first, then
    whatever the server says next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replaying_receive() -> Message:
        return pending.pop() if pending else await receive()

    return replaying_receive
