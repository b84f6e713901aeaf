"""Assembles the HTTP API and the web pages from each module's routers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import State
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mechanisms import __version__, modules
from mechanisms.core.api import router as core_api
from mechanisms.core.clock import Clock, SystemClock
from mechanisms.core.config import Settings, get_settings
from mechanisms.core.db import Database
from mechanisms.core.worker import Worker
from mechanisms.web import pages
from mechanisms.web.http import EXCEPTION_HANDLERS, RequestGuards
from mechanisms.web.security import SecurityHeaders, redact_access_log

log = logging.getLogger("mechanisms.app")

DESCRIPTION = """Mechanisms turns an engineering organisation's operating practices into
working mechanisms. Authenticate with `Authorization: Bearer <token>` (create one with
`mech token create` or on your profile page). Errors are
`{"error": {"code", "message", "details"}}` with a 4xx status."""


def create_app(
    db: Database | None = None,
    *,
    clock: Clock | None = None,
    settings: Settings | None = None,
    run_worker: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    db = db or Database(settings.database_url)
    clock = clock or SystemClock()
    modules.import_all()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # FastAPI prepares a route (its parameters and response model) on the first request
        # that reaches it, about a second for a mechanism's router, while every other
        # request waits. Building the OpenAPI schema prepares them all, before serving.
        app.openapi()
        # After uvicorn configured its loggers (it does so before the app starts).
        redact_access_log()
        worker = thread = None
        if run_worker:
            worker = Worker(app.state.db, clock=app.state.clock, settings=settings)
            thread = threading.Thread(target=worker.run_forever, name="mech-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker and thread:
                worker.stop()
                thread.join(timeout=10)
                worker.close()

    app = FastAPI(
        title="Mechanisms",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
        # /docs is the decision docs' pages; the API's own reference lives under /api.
        docs_url="/api/docs",
        redoc_url="/api/redoc",
    )
    app.state.settings = settings
    attach(app, db, clock)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    # Mechanisms' fast paths (e.g. OFREP evaluation) sit inside the guards: body limit, metrics.
    for middleware in modules.middlewares():
        app.add_middleware(middleware)
    app.add_middleware(RequestGuards, max_body_bytes=settings.max_body_bytes, registry=registry)
    app.add_middleware(SecurityHeaders)
    if settings.trusted_proxies.strip():
        # Outermost, so everything inside sees the client's address and scheme.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database answers",
        responses={503: {"description": "the database does not answer"}},
    )
    def readyz(request: Request) -> JSONResponse:
        try:
            request.app.state.db.ping()
        except SQLAlchemyError as exc:
            log.warning("not ready: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ready", "database": "ok"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus text exposition",
        response_class=PlainTextResponse,
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(core_api)
    for router in modules.api_routers():
        app.include_router(router)
    app.include_router(pages.router)
    for router in modules.page_routers():
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app


def attach(app: FastAPI, db: Database, clock: Clock) -> None:
    """Point an app at a database and a clock.

    Routes and middleware stay as built (FastAPI prepares each route's validation on its
    first request, which costs about a second per app); the state starts afresh, so no
    cache kept for another database (e.g. OFREP's compiled flags) survives the move."""
    app.state = State(
        {
            "db": db,
            "clock": clock,
            "settings": app.state.settings,
            "render_error": pages.render_error,
        }
    )
