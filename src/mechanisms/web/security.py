"""Browser-facing protections every response shares: the security headers (a
Content-Security-Policy without inline scripts among them), Secure cookies over HTTPS,
and access logs that never show a secret from a URL."""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Scripts come only from our own files: an injected <script> or on*= attribute does not
# run. Styles keep 'unsafe-inline' for the style attributes of the server-drawn SVG charts
# and the indicator styles htmx inserts; a style cannot run code.
PAGE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# FastAPI's API reference pages load Swagger UI and ReDoc from their CDN and configure
# them with an inline script; they show no user data, so only they get this policy.
API_REFERENCE_PATHS = ("/api/docs", "/api/redoc")
API_REFERENCE_CDN = "https://cdn.jsdelivr.net"
API_REFERENCE_POLICY = {
    **PAGE_POLICY,
    "script-src": f"'self' 'unsafe-inline' {API_REFERENCE_CDN}",
    "style-src": f"'self' 'unsafe-inline' {API_REFERENCE_CDN} https://fonts.googleapis.com",
    "font-src": "'self' https://fonts.gstatic.com",
    "img-src": "'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
    "worker-src": "'self' blob:",
}


def _policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in directives.items())


CONTENT_SECURITY_POLICY = _policy(PAGE_POLICY)
OTHER_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_HEADER_NAMES = {b"content-security-policy", *(name for name, _ in OTHER_HEADERS)}
_PAGE_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *OTHER_HEADERS]
_API_REFERENCE_HEADERS = [
    (b"content-security-policy", _policy(API_REFERENCE_POLICY).encode()),
    *OTHER_HEADERS,
]


class SecurityHeaders:
    """Adds the security headers to every HTTP response, refusals and static files too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        reference = scope.get("path") in API_REFERENCE_PATHS
        added = _API_REFERENCE_HEADERS if reference else _PAGE_HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in _HEADER_NAMES
                ]
                message["headers"] = headers + added
            await send(message)

        await self.app(scope, receive, with_headers)


def is_https(request: Request) -> bool:
    """The scheme the browser used: the socket's, or a trusted proxy's X-Forwarded-Proto
    (the proxy headers middleware has already put it in the request's scope)."""
    return request.url.scheme == "https"


def secure_cookies(request: Request) -> bool:
    return request.app.state.settings.secure_cookies or is_https(request)


# Secrets that travel in URLs: calendar feed tokens (/feeds/<token>.ics), API tokens,
# and any query parameter named like a credential.
_SECRET_IN_PATH = re.compile(r"(/feeds/)[^/?.\s]+")
_SECRET_IN_QUERY = re.compile(
    r"([?&][^=&\s]*(?:token|secret|password|key|signature)=)[^&\s]*", re.IGNORECASE
)
_API_TOKEN = re.compile(r"mech_[A-Za-z0-9_-]{20,}")
REDACTED = "[redacted]"


def redact_url(text: str) -> str:
    text = _SECRET_IN_PATH.sub(rf"\g<1>{REDACTED}", text)
    text = _SECRET_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)
    return _API_TOKEN.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """On uvicorn's access logger: its records carry the request's path and query as an
    argument (client, method, full path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


ACCESS_LOGGER = "uvicorn.access"


def redact_access_log() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
