"""Browser tests: the real app served by uvicorn on a free local port, driven by Debian's
headless Chromium through Playwright (never ``playwright install``).

One browser per test session; per test a fresh browser context (cookies, storage), a
wiped and seeded database and a server of its own (starting one takes milliseconds).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher

from mechanisms.app import create_app
from mechanisms.core import accounts
from mechanisms.core.clock import SystemClock
from mechanisms.core.config import Settings
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.identity import ANONYMOUS
from mechanisms.web.http import SESSION_COOKIE
from tests.conftest import PASSWORD, Org, seed_org
from tests.support.server import serving

CHROMIUM = shutil.which("chromium")
CHROMIUM_MISSING = "Chromium not found: install Debian's chromium package to run browser tests"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Playwright's default of 30 s only hides a hang; a page here answers in milliseconds.
TIMEOUT_MS = 5_000


# --- the server ---------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashing() -> Iterator[None]:
    """Argon2 at its production cost takes a good part of a second per sign-in on a busy
    machine; these tests are about pages, not hashing, so they hash cheaply."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        yield


@dataclass
class LiveServer:
    url: str
    db: Database
    org: Org


def serve(database: Database) -> Iterator[LiveServer]:
    """The real app served by uvicorn on a free local port, over a wiped database seeded
    with the small organisation (ada admin, leo leader, eve engineer, vic viewer).
    The clock is the real one: sessions and tokens expire by wall-clock time."""
    clock = SystemClock()
    org = seed_org(database, clock)
    app = create_app(database, clock=clock, settings=Settings())
    with serving(app) as url:
        yield LiveServer(url, database, org)


@pytest.fixture
def live(sqlite_db: Database) -> Iterator[LiveServer]:
    """The app over SQLite (a module that wants both backends overrides this with
    ``serve(db)``)."""
    yield from serve(sqlite_db)


# --- the browser --------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip(CHROMIUM_MISSING)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class ConsoleErrors(list[str]):
    """Console errors and uncaught exceptions seen by a page. A refused request is logged
    twice (the browser's 'Failed to load resource … status of 403' and htmx's 'Response
    Status Error Code 403'); tests that expect refusals name those statuses."""

    def unexpected(self, *expected_statuses: int) -> list[str]:
        patterns = [
            f"{prefix}{status}"
            for status in expected_statuses
            for prefix in ("status of ", "Error Code ")
        ]
        return [e for e in self if not any(p in e for p in patterns)]


@pytest.fixture
def new_page(browser: Any, live: LiveServer) -> Iterator[Callable[..., Any]]:
    """new_page(viewport=PHONE) opens a page in a fresh context (no cookies) on the live
    server; ``page.console_errors`` collects console errors and page exceptions."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=live.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors = ConsoleErrors()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        page.console_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()


def wait_until(page: Any, expression: str, arg: Any = None) -> None:
    """``page.wait_for_function`` without it compiling the expression inside the page, which
    the Content-Security-Policy forbids (no 'unsafe-eval'): polls ``page.evaluate``."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        try:
            if page.evaluate(expression, arg):
                return
        except PlaywrightError as exc:
            # The page navigated while it was asked (as an htmx redirect does): ask the next.
            if "context was destroyed" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {TIMEOUT_MS} ms: {expression}")
        page.wait_for_timeout(25)


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Fill in and submit the sign-in form (opening it first unless it is showing)."""
    if urlsplit(page.url).path != "/login":
        page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@pytest.fixture
def signed_in(new_page: Callable[..., Any], live: LiveServer) -> Callable[..., Any]:
    """signed_in("ada", viewport=PHONE, path="/audit"): a page of someone already signed
    in, showing ``path``. The session is opened as the sign-in form opens one (tests of
    the form itself fill it in), which saves each test a few page loads."""

    def open_as(username: str, viewport: dict[str, int] | None = None, path: str = "/") -> Any:
        with live.db.transaction() as session:
            ctx = Ctx(session, ANONYMOUS, datetime.now(UTC))
            cookie, _ = accounts.login(ctx, username, PASSWORD, timedelta(hours=1))
        page = new_page(viewport)
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": live.url}])
        page.goto(path)
        assert urlsplit(page.url).path == urlsplit(path).path, f"{username} is not signed in"
        return page

    return open_as


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where layout tests leave screenshots; MECH_SCREENSHOTS=dir keeps them somewhere."""
    target = os.environ.get("MECH_SCREENSHOTS")
    if target:
        path = Path(target)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")
