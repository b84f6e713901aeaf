"""Issue #14, item 14: security headers on every response, a Content-Security-Policy the
pages pass without inline scripts, Secure cookies over HTTPS (behind a trusted proxy too)
and access logs that never show a secret from a URL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mechanisms.app import create_app
from mechanisms.core.config import Settings
from mechanisms.web.security import API_REFERENCE_CDN, CONTENT_SECURITY_POLICY
from tests.conftest import PASSWORD
from tests.support.server import serving

SRC = Path(__file__).resolve().parents[2] / "src" / "mechanisms"
API = "/api/v1"


def directives(policy: str) -> dict[str, list[str]]:
    parts = (p.split() for p in policy.split(";") if p.strip())
    return {name: values for name, *values in parts}


def assert_secured(response: httpx.Response) -> None:
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/login", 200),
        ("GET", "/audit", 303),
        ("GET", f"{API}/me", 200),
        ("GET", f"{API}/no-such-thing", 404),
        ("GET", "/static/mech.js", 200),
        ("GET", "/healthz", 200),
        ("POST", f"{API}/teams", 413),
    ],
)
def test_every_response_carries_the_security_headers(client, org, method, path, status):
    response = client.request(
        method,
        path,
        headers={**org.header("ada"), "Content-Length": "999999"}
        if status == 413
        else org.header("ada")
        if path.startswith(API)
        else {},
        follow_redirects=False,
    )
    assert response.status_code == status
    assert_secured(response)


def test_only_the_api_reference_may_load_its_cdn_scripts(client):
    reference = directives(client.get("/api/docs").headers["content-security-policy"])
    assert API_REFERENCE_CDN in reference["script-src"]
    assert reference["frame-ancestors"] == ["'none'"]
    assert API_REFERENCE_CDN not in CONTENT_SECURITY_POLICY


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", re.IGNORECASE)


def test_no_template_has_an_inline_script_or_handler():
    """The policy would refuse them, and a page would silently lose its behaviour."""
    offenders = []
    for template in SRC.rglob("templates/*.html"):
        text = template.read_text()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER):
            offenders += [
                f"{template.relative_to(SRC)}: {m.group(0)}" for m in pattern.finditer(text)
            ]
    assert offenders == []


def test_an_injected_inline_script_is_refused_by_the_policy(client):
    """What an attacker who slipped markup into a page would rely on: inline script,
    an event handler, a plugin object, framing the page."""
    policy = directives(client.get("/login").headers["content-security-policy"])
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert client.get("/login").headers["x-frame-options"] == "DENY"


def _login_cookies(client: TestClient, **headers: str) -> list[str]:
    page = client.get("/login", headers=headers)
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    signed = client.post(
        "/login",
        data={"username": "ada", "password": PASSWORD, "login_csrf": login_csrf},
        # As the browser would, whose connection to the proxy is HTTPS (the test client
        # keeps a Secure cookie to itself on http://).
        headers={**headers, "Cookie": f"mech_login_csrf={login_csrf}"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    return page.headers.get_list("set-cookie") + signed.headers.get_list("set-cookie")


def test_cookies_are_secure_over_https(app, db, clock, org):
    from mechanisms.app import attach

    attach(app, db, clock)
    with TestClient(app, base_url="https://testserver") as browser:
        cookies = _login_cookies(browser)
    assert cookies and all("; secure" in c.lower() for c in cookies), cookies


def test_cookies_are_secure_behind_a_trusted_https_proxy(db, clock, org):
    app = create_app(db, clock=clock, settings=Settings(trusted_proxies="10.0.0.2"))
    with TestClient(app, client=("10.0.0.2", 1)) as proxy:
        cookies = _login_cookies(proxy, **{"X-Forwarded-Proto": "https"})
    assert cookies and all("; secure" in c.lower() for c in cookies), cookies


def test_an_untrusted_peer_cannot_claim_https(db, clock, org):
    """Nor can it claim plain HTTP behind a trusted proxy: only the proxy's word counts."""
    app = create_app(db, clock=clock, settings=Settings(trusted_proxies="10.0.0.2"))
    with TestClient(app, client=("192.0.2.9", 1)) as stranger:
        page = stranger.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in page.headers["set-cookie"].lower()


def test_access_logs_do_not_show_feed_tokens_or_other_secrets(db, clock, org, capfd):
    """Whoever reads the access log (uvicorn's, on standard output) learns no credential."""
    app = create_app(db, clock=clock, settings=Settings())
    with (
        serving(app, access_log=True, log_level="info") as url,
        httpx.Client(base_url=url) as http,
    ):
        feed = http.post(f"{API}/ops/oncall/people/eve/feed", headers=org.header("eve"))
        feed_url = feed.json()["url"]
        secret = re.search(r"/feeds/([^/.]+)\.ics", feed_url).group(1)
        assert http.get(feed_url).status_code == 200
        http.get(f"{API}/me", params={"token": "hunter2-token", "api_key": "hunter3"})
        http.get(f"/login?next=/x&access_token={org.tokens['ada']}")
    log = capfd.readouterr().out
    assert "/feeds/[redacted].ics" in log, log
    for leaked in (secret, "hunter2-token", "hunter3", org.tokens["ada"]):
        assert leaked not in log
