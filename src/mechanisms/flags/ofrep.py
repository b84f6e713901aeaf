"""OFREP single-flag evaluation on a fast path in front of the FastAPI router.

Remote evaluation is the one endpoint called at the rate of a product's own traffic.
Through the router, each call paid for route matching, dependency solving, thread
hops, a write transaction and four queries: 2 ms of CPU. Here a call costs a dict
lookup for the token, a dict lookup for the compiled rule set and the evaluation.

What is cached, and for how long: a token's check for ``TOKEN_TTL`` seconds (a revoked
token keeps working that long) and a rule set until its revision changes, looked up at
most every ``RULES_TTL`` seconds (a change reaches remote evaluations that late at
most). The FastAPI route with the same path stays for the OpenAPI document; this
middleware answers first.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mechanisms.core import accounts, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import MechanismsError
from mechanisms.core.identity import system_principal
from mechanisms.core.permissions import Tenancy, tenancy_of
from mechanisms.flags import service
from mechanisms.flags.domain import FLAG_NOT_FOUND, PARSE_ERROR, Engine, Evaluation, standard_reason

TOKEN_TTL = 1.0
RULES_TTL = 1.0
SINGLE = re.compile(r"^/sdk/(?P<app>[^/]+)/(?P<env>[^/]+)/ofrep/v1/evaluate/flags/(?P<key>[^/]+)$")
OFREP_FAILURE_CODES = ("PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", FLAG_NOT_FOUND)


@dataclass
class _Rules:
    etag: str
    engine: Engine
    checked: float
    # Who may evaluate: credentials of this team's organisation (issue #14, item 8).
    owner_team_id: int


@dataclass
class EngineCache:
    """Compiled rule sets per (application, environment), shared by the fast path and the
    bulk endpoint, refreshed by one caller at a time."""

    entries: dict[tuple[str, str], _Rules] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def load(self, db: Any, clock: Any, app_key: str, env_key: str, known: _Rules | None) -> _Rules:
        """Read the revision; rebuild the engine only when it changed. Raises NotFound."""
        with db.transaction(write=False) as session:
            ctx = Ctx(session, system_principal("ofrep"), clock.now())
            app = service.get_app(ctx, app_key)
            env = service.get_environment(ctx, app, env_key)
            etag = service.etag(app, env)
            if known is not None and known.etag == etag:
                known.checked = time.monotonic()
                return known
            return _Rules(
                etag,
                Engine(service.ruleset(session, app, env)),
                time.monotonic(),
                app.owner_team_id,
            )

    async def get(self, db: Any, clock: Any, app_key: str, env_key: str) -> _Rules:
        key = (app_key, env_key)
        rules = self.entries.get(key)
        if rules is not None and time.monotonic() - rules.checked < RULES_TTL:
            return rules
        lock = self.locks.setdefault(key, asyncio.Lock())
        if lock.locked() and rules is not None:
            return rules  # someone is refreshing it: the rules of a second ago will do
        async with lock:
            rules = self.entries.get(key)
            if rules is None or time.monotonic() - rules.checked >= RULES_TTL:
                rules = await run_in_threadpool(self.load, db, clock, app_key, env_key, rules)
                self.entries[key] = rules
            return rules


def engine_cache(state: Any) -> EngineCache:
    cache = getattr(state, "ofrep_engines", None)
    if cache is None:
        cache = state.ofrep_engines = EngineCache()
    return cache


class _TokenCache:
    """A token's tenancy (what it may see), cached as long as its check."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Tenancy, float]] = {}

    def check(self, db: Any, clock: Any, token: str) -> Tenancy:
        found = self.entries.get(token)
        if found is not None and time.monotonic() - found[1] < TOKEN_TTL:
            return found[0]
        with db.transaction(write=False) as session:
            principal = accounts.check_token(session, token, clock.now()).principal
            seen = tenancy_of(session, principal)
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[token] = (seen, time.monotonic())
        return seen


@dataclass(frozen=True)
class _Route:
    """What the metrics middleware reads to label the request by its route template."""

    path: str = "/sdk/{app}/{environment}/ofrep/v1/evaluate/flags/{key}"


ROUTE = _Route()


def success_body(result: Evaluation) -> dict[str, Any]:
    metadata = {k: v for k, v in result.metadata.items() if isinstance(v, str | int | float | bool)}
    reason = standard_reason(result.reason)
    if reason != result.reason:
        metadata["reasonDetail"] = result.reason
    if result.rule_id:
        metadata["ruleId"] = result.rule_id
    return {
        "key": result.key,
        "reason": reason,
        "variant": result.variant,
        "value": result.value,
        "metadata": metadata,
    }


def failure_body(result: Evaluation) -> dict[str, Any]:
    code = result.error_code if result.error_code in OFREP_FAILURE_CODES else "GENERAL"
    return {"key": result.key, "errorCode": code, "errorDetails": result.error_message or code}


def context_of(raw: bytes) -> dict[str, Any] | tuple[str, str]:
    """The evaluation context of an OFREP body, or (error code, details)."""
    try:
        body = inputs.parse_json(raw) if raw.strip() else {}
    except ValueError as exc:
        return PARSE_ERROR, f"the body is not valid JSON: {exc}"
    context = body.get("context") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(context, dict | None):
        return "INVALID_CONTEXT", "the body must be an object with an optional object 'context'"
    return context or {}


class OfrepFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tokens = _TokenCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            SINGLE.match(scope.get("path", ""))
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        state = scope["app"].state
        status, body = await self._evaluate(state, scope, receive, match)
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _evaluate(
        self, state: Any, scope: Scope, receive: Receive, match: re.Match[str]
    ) -> tuple[int, dict[str, Any]]:
        key = match["key"]
        token = _bearer(scope)
        if token is None:
            return 401, _error(
                "not_authenticated", "send an API token: Authorization: Bearer <token>"
            )
        try:
            seen = await self._check_token(state, token)
            rules = await engine_cache(state).get(state.db, state.clock, match["app"], match["env"])
        except MechanismsError as exc:
            return exc.status, exc.to_dict()
        if not seen.sees_team(rules.owner_team_id):
            # Answered as for an application that does not exist: another tenant learns nothing.
            return 404, _error("not_found", f"application {match['app']!r} not found")
        context = context_of(await _read_body(receive))
        if isinstance(context, tuple):
            return 400, {"key": key, "errorCode": context[0], "errorDetails": context[1]}
        result = rules.engine.evaluate(key, context)
        if result.error_code == FLAG_NOT_FOUND:
            return 404, failure_body(result)
        if result.is_error:
            return 400, failure_body(result)
        return 200, success_body(result)

    async def _check_token(self, state: Any, token: str) -> Tenancy:
        found = self.tokens.entries.get(token)
        if found is not None and time.monotonic() - found[1] < TOKEN_TTL:
            return found[0]
        return await run_in_threadpool(self.tokens.check, state.db, state.clock, token)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": None}}
