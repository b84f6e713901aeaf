"""The HTTP API as a client meets it: the error shape and codes for every kind of bad
request, authentication, the machine endpoints, and the core resources end to end."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from mechanisms.app import create_app
from mechanisms.core.clock import ManualClock
from mechanisms.core.config import Settings
from mechanisms.core.db import Database
from mechanisms.core.tables import Delivery, Event, User
from tests.conftest import PASSWORD, backend_url

API = "/api/v1"


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The error body, after checking the status, the shape and (if given) the code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def fields_of(error: dict[str, Any]) -> set[str]:
    details = error["details"]
    if isinstance(details, dict):
        return {details["field"]}
    return {d["field"] for d in details}


def audit_actions(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT action FROM audit_records ORDER BY seq"))]


# --- malformed and mistyped input ----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"slug": }', b'{"slug": "x"} trailing', b"\xff\xfe", b"{'slug': 'x'}", b"[1,]"],
)
def test_malformed_json_is_400(client, org, raw):
    response = client.post(
        f"{API}/teams",
        content=raw,
        headers={**org.header("ada"), "content-type": "application/json"},
    )
    error_of(response, 400, "malformed_json")


def test_a_body_that_is_not_json_is_415(client, org):
    response = client.post(
        f"{API}/teams",
        content=b"slug=x",
        headers={**org.header("ada"), "content-type": "text/plain"},
    )
    error_of(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        # Strict types: no strings for booleans or numbers, no numbers for booleans.
        ("patch", "/webhooks/1", {"active": "true"}, "active"),
        ("patch", "/webhooks/1", {"active": 1}, "active"),
        ("post", "/users", {"username": "zed", "is_bot": "true"}, "is_bot"),
        ("post", "/users", {"username": "zed", "is_site_admin": 0}, "is_site_admin"),
        ("post", "/users", {"username": 42}, "username"),
        ("post", "/tokens", {"name": 5}, "name"),
        ("post", "/tokens", {"name": "n", "expires_at": 1893456000}, "expires_at"),
        ("post", "/tokens", {"name": "n", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ("post", "/tokens", {"name": "n", "scope": "owner"}, "scope"),
        ("post", "/webhooks", {"url": "https://x.example", "event_types": "*"}, "event_types"),
        ("post", "/webhooks", {"url": "ftp://x.example"}, "url"),
        ("post", "/webhooks", {"url": "http://["}, "url"),
        ("put", "/teams/acme/members/eve", {"role": 3}, "role"),
        ("put", "/teams/acme/members/eve", {}, "role"),
        # Unknown fields are typos, not ignored.
        ("post", "/teams", {"slug": "x", "colour": "red"}, "colour"),
        ("patch", "/webhooks/1", {"active": True, "enabled": True}, "enabled"),
    ],
)
def test_wrong_types_and_unknown_fields_are_422_naming_the_field(
    client, org, method, path, body, field
):
    response = client.request(method, f"{API}{path}", json=body, headers=org.header("ada"))
    error = error_of(response, 422, "invalid_input")
    assert field in fields_of(error), error
    assert field in error["message"] or error["details"]


@pytest.mark.parametrize(
    "method, path, field",
    [
        ("get", "/audit?limit=abc", "query.limit"),
        ("get", "/audit?limit=0", "query.limit"),
        ("get", "/audit?since=yesterday", "query.since"),
        ("get", "/audit?since=0.5", "query.since"),
        ("get", "/deliveries?status=lost", "query.status"),
        ("get", "/deliveries?staus=dead", "query.staus"),
        ("delete", "/tokens/abc", "path.token_id"),
        ("delete", "/tokens/99999999999999999999", "path.token_id"),
        ("post", "/deliveries/0/retry", "path.delivery_id"),
    ],
)
def test_bad_query_and_path_parameters_are_422(client, org, method, path, field):
    error = error_of(client.request(method, f"{API}{path}", headers=org.header("ada")), 422)
    assert field in fields_of(error)


def test_text_with_nul_or_lone_surrogates_is_refused(client, org):
    headers = {**org.header("ada"), "content-type": "application/json"}
    for raw in [b'{"slug": "a\\u0000b"}', b'{"slug": "ok", "name": "a\\ud800"}']:
        error = error_of(client.post(f"{API}/teams", content=raw, headers=headers), 422)
        assert fields_of(error) & {"slug", "name"}
    error_of(client.get(f"{API}/users/a%00b", headers=org.header("ada")), 400)
    error_of(client.get(f"{API}/audit?actor=%00", headers=org.header("ada")), 400)
    assert client.get(f"{API}/teams", headers=org.header("ada")).json()[0]["slug"] == "acme"


def test_unknown_ids_and_slugs_are_404(client, org):
    ada = org.header("ada")
    for method, path, body in [
        ("get", "/users/nobody", None),
        ("get", "/teams/nope/members", None),
        ("put", "/teams/nope/members/eve", {"role": "viewer"}),
        ("put", "/teams/acme/members/nobody", {"role": "viewer"}),
        ("delete", "/teams/acme/members/eve", None),  # eve is not a member of acme itself
        ("delete", "/tokens/9999", None),
        ("patch", "/webhooks/9999", {"active": False}),
        ("post", "/deliveries/9999/retry", None),
        ("post", "/teams", {"slug": "orphan", "parent": "nope"}),
        ("post", "/tokens", {"name": "n", "username": "nobody"}),
        ("get", "/tokens?username=nobody", None),
    ]:
        error_of(client.request(method, f"{API}{path}", json=body, headers=ada), 404, "not_found")


# --- oversized bodies -----------------------------------------------------------------


def test_a_body_over_the_limit_is_413(client, org):
    big = {"slug": "big", "name": "x" * 70_000}
    error_of(client.post(f"{API}/teams", json=big, headers=org.header("ada")), 413, "too_large")


def test_a_chunked_body_over_the_limit_is_413(client, org):
    def chunks() -> Iterator[bytes]:
        yield b'{"slug": "big", "name": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        f"{API}/teams",
        content=chunks(),
        headers={**org.header("ada"), "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    error_of(response, 413, "too_large")
    assert client.get(f"{API}/teams", headers=org.header("ada")).status_code == 200


# --- authentication -------------------------------------------------------------------


def test_missing_garbage_revoked_and_expired_tokens_are_401(client, org, clock):
    def refused(headers: dict[str, str]) -> None:
        response = client.get(f"{API}/teams", headers=headers)
        error_of(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"

    refused({})
    refused({"Authorization": "Bearer nope"})
    refused({"Authorization": "Bearer "})
    refused({"Authorization": "Basic YWRhOnB3"})
    refused({"Authorization": org.tokens["ada"]})
    error_of(client.get(f"{API}/me"), 401)

    created = client.post(
        f"{API}/tokens",
        json={"name": "short", "expires_at": (clock.now() + timedelta(hours=1)).isoformat()},
        headers=org.header("ada"),
    ).json()
    short = {"Authorization": f"Bearer {created['token']}"}
    assert client.get(f"{API}/teams", headers=short).status_code == 200
    clock.advance(timedelta(hours=1))
    refused(short)

    assert client.get(f"{API}/teams", headers=org.header("eve")).status_code == 200
    eve_token_id = client.get(f"{API}/tokens", headers=org.header("eve")).json()[0]["id"]
    assert (
        client.delete(f"{API}/tokens/{eve_token_id}", headers=org.header("ada")).status_code == 200
    )
    refused(org.header("eve"))


def test_a_deactivated_users_tokens_stop_working(client, org, db):
    with db.transaction() as session:
        session.execute(update(User).where(User.username == "leo").values(active=False))
    error_of(client.get(f"{API}/me", headers=org.header("leo")), 401)


def test_a_token_records_when_it_was_last_used(client, org, clock):
    ada = org.header("ada")
    created = client.post(f"{API}/tokens", json={"name": "ci"}, headers=ada).json()
    assert created["last_used_at"] is None
    ci = {"Authorization": f"Bearer {created['token']}"}

    def last_used() -> str | None:
        tokens = client.get(f"{API}/tokens", headers=ada).json()
        return next(t["last_used_at"] for t in tokens if t["id"] == created["id"])

    first = clock.now()
    assert client.get(f"{API}/me", headers=ci).status_code == 200
    assert last_used() == first.isoformat().replace("+00:00", "Z")
    # Within the resolution a read stays a read; after it the stamp moves.
    clock.advance(timedelta(minutes=1))
    client.get(f"{API}/me", headers=ci)
    assert last_used() == first.isoformat().replace("+00:00", "Z")
    clock.advance(timedelta(minutes=10))
    client.get(f"{API}/me", headers=ci)
    assert last_used() == clock.now().isoformat().replace("+00:00", "Z")
    # A refused request still counts as a use of the token.
    clock.advance(timedelta(minutes=10))
    error_of(client.get(f"{API}/audit/verify", headers=ci), 403)
    assert last_used() == clock.now().isoformat().replace("+00:00", "Z")


# --- routing errors ----------------------------------------------------------------------


def test_unknown_routes_are_404_json(client, org):
    error_of(client.get(f"{API}/nope", headers=org.header("ada")), 404, "not_found")
    error_of(client.get("/nope", headers={"accept": "application/json"}), 404, "not_found")
    error_of(client.get(f"{API}/nope"), 404, "not_found")


def test_a_wrong_method_is_405_json(client, org):
    response = client.put(f"{API}/me", headers=org.header("ada"))
    error_of(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]
    error_of(client.delete("/healthz"), 405, "method_not_allowed")


def test_forbidden_is_403_naming_the_role(client, org):
    response = client.put(
        f"{API}/teams/payments/members/vic", json={"role": "engineer"}, headers=org.header("leo")
    )
    error = error_of(response, 403, "forbidden")
    assert error["details"] == {"needed_role": "admin"}
    assert "payments" in error["message"]


# --- machine endpoints -------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.fixture
def fresh_client(db, clock):
    """A client of an app of its own, so the metrics count only this test's requests."""
    app = create_app(db, clock=clock, settings=Settings(max_body_bytes=64_000))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_metrics_time_requests_by_route_template(fresh_client, org):
    client = fresh_client
    assert client.get(f"{API}/users/ada", headers=org.header("ada")).status_code == 200
    client.get(f"{API}/users/nobody", headers=org.header("ada"))
    client.get("/no/such/page", headers={"accept": "application/json"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    exposition = response.text
    assert "# TYPE mech_http_request_duration_seconds histogram" in exposition
    labels = 'method="GET",route="/api/v1/users/{username}",status="200"'
    bucket = re.search(
        r'^mech_http_request_duration_seconds_bucket\{le="\+Inf",'
        + re.escape(labels)
        + r"\} (\S+)$",
        exposition,
        re.M,
    )
    assert bucket and float(bucket.group(1)) == 1.0, exposition
    assert f"mech_http_request_duration_seconds_count{{{labels}}} 1.0" in exposition
    assert 'route="/api/v1/users/{username}",status="404"' in exposition
    assert 'route="unmatched",status="404"' in exposition
    # Templates, not raw paths: one series per route, however many users there are.
    assert "/api/v1/users/ada" not in exposition


class TcpProxy:
    """A TCP relay in front of the database that a test can cut and restore, so the app
    meets a database that really stops answering and then comes back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a dead database host would."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            cut, self._open = self._open, []
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def pg_proxy(database_urls: dict[str, str]) -> Iterator[tuple[TcpProxy, str]]:
    url = make_url(backend_url(database_urls, "postgresql"))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxy.stop()


def test_readyz_is_503_while_the_database_is_unreachable_and_recovers(pg_proxy):
    proxy, url = pg_proxy
    db = Database(url)
    app = create_app(db, clock=ManualClock(), settings=Settings(max_body_bytes=64_000))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
            proxy.stop()
            for _ in range(2):  # the pooled connection is dead, and so is a new one
                response = client.get("/readyz")
                assert response.status_code == 503
                assert response.json() == {"status": "unavailable", "database": "unreachable"}
            assert client.get("/healthz").status_code == 200
            proxy.start()  # same port: nothing in the app is told
            response = client.get("/readyz")
            assert response.status_code == 200, response.text
    finally:
        db.dispose()


# --- resources end to end -------------------------------------------------------------------


def test_tokens_through_the_api(client, org, db):
    ada = org.header("ada")
    created = client.post(
        f"{API}/tokens", json={"name": "deploy bot", "scope": "viewer"}, headers=ada
    )
    assert created.status_code == 201
    token = created.json()
    assert token["token"].startswith("mech_") and token["token"].startswith(token["prefix"])
    assert token["scope"] == "viewer" and token["revoked_at"] is None
    listed = client.get(f"{API}/tokens", headers=ada).json()
    assert token["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)  # shown once, never again

    mine = {"Authorization": f"Bearer {token['token']}"}
    me = client.get(f"{API}/me", headers=mine).json()
    assert me["user"]["username"] == "ada" and me["via"] == "token" and me["scope"] == "viewer"

    # Admins make tokens for others; nobody makes one wider than their own credential.
    for_eve = client.post(f"{API}/tokens", json={"name": "eve's", "username": "eve"}, headers=ada)
    assert for_eve.status_code == 201
    assert for_eve.json()["id"] in [
        t["id"] for t in client.get(f"{API}/tokens?username=eve", headers=ada).json()
    ]
    error_of(
        client.post(
            f"{API}/tokens", json={"name": "wide", "scope": "admin"}, headers=org.header("leo")
        ),
        403,
        "forbidden",
    )
    error_of(client.get(f"{API}/tokens?username=ada", headers=org.header("leo")), 403)
    error_of(
        client.post(
            f"{API}/tokens", json={"name": "n", "expires_at": "2000-01-01T00:00:00Z"}, headers=ada
        ),
        422,
    )

    revoked = client.delete(f"{API}/tokens/{token['id']}", headers=ada)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    error_of(client.get(f"{API}/me", headers=mine), 401)
    # Revoking twice is harmless and records nothing new.
    before = audit_actions(db)
    assert client.delete(f"{API}/tokens/{token['id']}", headers=ada).status_code == 200
    assert audit_actions(db) == before
    assert before.count("token.revoked") == 1


def test_teams_and_members_through_the_api(client, org, db):
    ada, leo = org.header("ada"), org.header("leo")
    created = client.post(
        f"{API}/teams", json={"slug": "Search", "name": "Search", "parent": "acme"}, headers=ada
    )
    assert created.status_code == 201
    team = created.json()
    assert team["slug"] == "search" and team["parent_id"] is not None
    error_of(client.post(f"{API}/teams", json={"slug": "search"}, headers=ada), 409, "conflict")
    error_of(client.post(f"{API}/teams", json={"slug": "-bad"}, headers=ada), 422)
    assert "search" in [t["slug"] for t in client.get(f"{API}/teams", headers=leo).json()]

    put = client.put(f"{API}/teams/search/members/eve", json={"role": "leader"}, headers=ada)
    assert put.status_code == 200 and put.json() == {
        "username": "eve",
        "display_name": "eve",
        "role": "leader",
    }
    members = client.get(f"{API}/teams/search/members", headers=leo).json()
    assert [(m["username"], m["role"]) for m in members] == [("eve", "leader")]
    assert (
        client.put(
            f"{API}/teams/search/members/eve", json={"role": "engineer"}, headers=ada
        ).json()["role"]
        == "engineer"
    )
    me = client.get(f"{API}/me", headers=org.header("eve")).json()
    assert {"team": "search", "role": "engineer"} in me["memberships"]

    removed = client.delete(f"{API}/teams/search/members/eve", headers=ada)
    assert removed.status_code == 204 and removed.content == b""
    error_of(client.delete(f"{API}/teams/search/members/eve", headers=ada), 404)
    assert client.get(f"{API}/teams/search/members", headers=leo).json() == []
    assert audit_actions(db)[-4:] == [
        "team.created",
        "team.member_set",
        "team.member_set",
        "team.member_removed",
    ]


def test_users_through_the_api(client, org):
    ada = org.header("ada")
    created = client.post(
        f"{API}/users",
        json={
            "username": "Zoe",
            "display_name": "Zoë",
            "email": "zoe@example.com",
            "password": PASSWORD,
        },
        headers=ada,
    )
    assert created.status_code == 201
    assert created.json()["username"] == "zoe" and not created.json()["is_site_admin"]
    assert client.get(f"{API}/users/zoe", headers=ada).json()["display_name"] == "Zoë"
    # Until she joins one of vic's organisations, vic does not see her (issue #14, item 7).
    error_of(client.get(f"{API}/users/zoe", headers=org.header("vic")), 404)
    client.put(f"{API}/teams/acme/members/zoe", json={"role": "viewer"}, headers=ada)
    assert client.get(f"{API}/users/zoe", headers=org.header("vic")).json()["display_name"] == "Zoë"
    error_of(client.post(f"{API}/users", json={"username": "zoe"}, headers=ada), 409)
    error_of(
        client.post(f"{API}/users", json={"username": "x", "password": "short"}, headers=ada), 422
    )
    error_of(client.post(f"{API}/users", json={"username": "yan"}, headers=org.header("leo")), 403)


def test_webhooks_through_the_api(client, org, db):
    ada = org.header("ada")
    created = client.post(
        f"{API}/webhooks",
        json={
            "url": "https://hooks.example.com/mech",
            "event_types": ["identity.*"],
            "description": "chat",
        },
        headers=ada,
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    listed = client.get(f"{API}/webhooks", headers=ada).json()
    assert [(h["id"], h["event_types"]) for h in listed] == [(hook["id"], ["identity.*"])]
    assert "secret" not in listed[0]

    patched = client.patch(f"{API}/webhooks/{hook['id']}", json={"active": False}, headers=ada)
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert client.get(f"{API}/webhooks", headers=ada).json()[0]["active"] is False
    assert (
        client.patch(f"{API}/webhooks/{hook['id']}", json={"active": True}, headers=ada).json()[
            "active"
        ]
        is True
    )
    assert audit_actions(db)[-3:] == ["webhook.created", "webhook.disabled", "webhook.enabled"]

    for who in ("leo", "eve", "vic", "ada-viewer-scope"):
        error_of(client.get(f"{API}/webhooks", headers=org.header(who)), 403)
        error_of(
            client.patch(
                f"{API}/webhooks/{hook['id']}", json={"active": False}, headers=org.header(who)
            ),
            403,
        )


def _delivery(db: Database, clock: ManualClock, status: str) -> int:
    with db.transaction() as session:
        event = Event(
            type="identity.team_created",
            object_type="team",
            object_id="1",
            payload={"slug": "acme"},
            actor="test",
            occurred_at=clock.now(),
            fanned_out=True,
        )
        session.add(event)
        session.flush()
        delivery = Delivery(
            event_id=event.id,
            target="webhook:1",
            object_key="team:1",
            status=status,
            attempts=8 if status == "dead" else 0,
            next_attempt_at=clock.now(),
            last_error="HTTP 500" if status == "dead" else None,
            last_status_code=500 if status == "dead" else None,
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def test_deliveries_through_the_api(client, org, db, clock):
    ada = org.header("ada")
    dead = _delivery(db, clock, "dead")
    pending = _delivery(db, clock, "pending")
    listed = client.get(f"{API}/deliveries?status=dead", headers=ada).json()
    assert [(d["id"], d["event_type"], d["attempts"]) for d in listed] == [
        (dead, "identity.team_created", 8)
    ]
    assert {d["id"] for d in client.get(f"{API}/deliveries", headers=ada).json()} == {dead, pending}
    assert len(client.get(f"{API}/deliveries?limit=1", headers=ada).json()) == 1

    clock.advance(timedelta(minutes=3))
    retried = client.post(f"{API}/deliveries/{dead}/retry", headers=ada)
    assert retried.status_code == 200
    body = retried.json()
    assert body["status"] == "pending" and body["attempts"] == 0
    assert body["next_attempt_at"] == clock.now().isoformat().replace("+00:00", "Z")
    assert audit_actions(db)[-1] == "delivery.retried"
    # Only a dead delivery can be retried: the others are already on their way.
    error_of(client.post(f"{API}/deliveries/{dead}/retry", headers=ada), 409, "conflict")
    error_of(client.post(f"{API}/deliveries/{pending}/retry", headers=ada), 409, "conflict")
    assert client.get(f"{API}/deliveries?status=dead", headers=ada).json() == []
    error_of(client.post(f"{API}/deliveries/{pending}/retry", headers=org.header("leo")), 403)
    error_of(client.get(f"{API}/deliveries", headers=org.header("leo")), 403)


# --- web sessions and CSRF -------------------------------------------------------------------


def _sign_in(client: TestClient, username: str) -> str:
    """Sign in through the login form, as a browser does; returns the session's CSRF token."""
    page = client.get("/login")
    assert page.status_code == 200
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    assert client.cookies.get("mech_login_csrf") == login_csrf
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "login_csrf": login_csrf, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert client.cookies.get("mech_session")
    home = client.get("/")
    return re.search(r'"X-CSRF-Token": "([^"]+)"', home.text).group(1)


def test_a_cookie_session_needs_the_csrf_header_to_change_anything(client, org, db):
    csrf = _sign_in(client, "ada")
    # Reading with the cookie alone is fine; changing is not.
    me = client.get(f"{API}/me").json()
    assert me["via"] == "session" and me["user"]["username"] == "ada"
    before = audit_actions(db)
    error_of(client.post(f"{API}/teams", json={"slug": "csrf"}), 403, "csrf_failed")
    error_of(
        client.post(f"{API}/teams", json={"slug": "csrf"}, headers={"X-CSRF-Token": "guess"}),
        403,
        "csrf_failed",
    )
    error_of(client.delete(f"{API}/teams/acme/members/vic"), 403, "csrf_failed")
    assert audit_actions(db) == before
    created = client.post(f"{API}/teams", json={"slug": "csrf"}, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    assert audit_actions(db)[-1] == "team.created"


def test_a_login_form_without_its_csrf_cookie_is_refused(client, org):
    response = client.post(
        "/login",
        data={"username": "ada", "password": PASSWORD, "login_csrf": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "mech_session" not in client.cookies


def test_every_route_is_prepared_before_the_first_request(sqlite_db):
    """No first request waits while FastAPI prepares its route (about a second per
    mechanism's router, with every other request waiting behind it)."""
    app = create_app(sqlite_db, clock=ManualClock(), settings=Settings(max_body_bytes=64_000))
    with TestClient(app, raise_server_exceptions=False):
        assert app.openapi_schema is not None  # built at start-up, which prepares the routes
