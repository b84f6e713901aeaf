"""Organisations are separate tenants (issue #14, item 7) and flag evaluation needs a
credential of the application's organisation (item 8).

Two organisations, acme and globex, each with a leader, an engineer and a viewer. Acme owns
an object in every mechanism. Globex's leader then sends, with a valid token of their own,
every request an attacker would: reads of acme's objects answer 404 (existence is not
revealed), lists do not show them, writes are refused. Acme's own people still read them.
Each table below is the list a reviewer checks; every row runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal, system_principal
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.docs import registry, reviews
from mechanisms.docs.registry import NewDoc
from mechanisms.flags import service as flags
from mechanisms.ops import alarms, autoscaling, paging, schedules, silences, tickets
from tests.conftest import PASSWORD
from tests.deploys.conftest import ALARM_DEFINITION, STAGES, checkout, ship  # noqa: F401 - checkout is a fixture

GLOBEX = {"gil": "leader", "gus": "engineer", "gwen": "viewer"}
BODY = "## Why now\n\nThe checkout page is slow.\n\n## What changes\n\nWe cache it.\n"


@dataclass
class Tenants:
    tokens: dict[str, str]
    ids: dict[str, Any]

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _as(db, username: str):
    with db.transaction(write=False) as session:
        user = accounts.find_user(session, username)
        return Principal(user_id=user.id, username=user.username, via="session")


@pytest.fixture
def tenants(db, clock, run, org, checkout) -> Tenants:  # noqa: F811 - the imported fixture
    """Acme (the shared ``org``) with the deploys fixture's checkout service, pipeline and
    alarm, plus globex and one object of acme's in every other mechanism."""
    tokens = dict(org.tokens)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        accounts.create_team(ctx, "globex", "Globex")
        for username, role in GLOBEX.items():
            accounts.create_user(ctx, username, password=PASSWORD)
            accounts.set_membership(ctx, "globex", username, role)
            tokens[username] = accounts.create_token(ctx, username, "test", role)[1]
    run(flags.create_app, "shop", "Shop", "payments")
    run(flags.create_flag, "shop", "checkout-v2", description="the new checkout")
    rotation = {"type": "daily", "handoff_time": "09:00"}
    layer = {"participants": ["eve"], "rotation": rotation, "start": "2026-01-01T09:00:00Z"}
    run(schedules.create_schedule, "payments", "primary", "UTC", [layer])
    run(autoscaling.create_target, "checkout-web", "checkout", min_capacity=1, max_capacity=4)
    eve, leo = _as(db, "eve"), _as(db, "leo")
    quiet = silences.Schedule(
        "2026-01-05T10:00:00", "2026-01-05T12:00:00", "UTC", None, ("checkout-errors",)
    )
    run(silences.create, "checkout-maintenance", quiet)
    latency = {"name": "checkout_latency_ms", "labels": {"service": "checkout"}, "value": 250.0}
    run(alarms.ingest_json, {"samples": [{**latency, "timestamp": clock.now().isoformat()}]})
    ticket = run(tickets.create, "checkout", "EU cards fail", 1, as_=eve)
    page = run(lambda ctx: paging.open_page(ctx, tickets.get(ctx, ticket.id)))
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    window = run(windows.freeze, "org", "acme", clock.now() + timedelta(days=2), "year-end")
    request = run(breakglass.request, "checkout", "prod", "v1", "fix", str(ticket.id), as_=eve)
    doc = run(registry.create, NewDoc(title="Cache the checkout", body=BODY), as_=eve)
    team_doc = run(
        registry.create, NewDoc(title="Payments plan", body=BODY, team="payments"), as_=eve
    )
    comment = run(reviews.comment, doc.slug, "question", "Why not a CDN?", as_=leo)
    ids = {
        "ticket": ticket.id,
        "page": page.id,
        "window": window.uid,
        "breakglass": request.id,
        "doc": doc.slug,
        "team_doc": team_doc.slug,
        "comment": comment.id,
    }
    return Tenants(tokens, ids)


# --- item 7: the API --------------------------------------------------------------------

API = "/api/v1"

# (what, path, the text that would betray acme's object)
LISTS = [
    ("flag applications", f"{API}/flags/apps", '"shop"'),
    ("ops services", f"{API}/ops/services", '"checkout"'),
    ("alarms", f"{API}/ops/alarms", "checkout-errors"),
    ("tickets", f"{API}/ops/tickets", "EU cards fail"),
    ("pages", f"{API}/ops/oncall/pages", '"ticket_id"'),
    ("on-call schedules", f"{API}/ops/oncall/schedules", '"primary"'),
    ("scalable targets", f"{API}/ops/scaling/targets", "checkout-web"),
    ("silences", f"{API}/ops/silences", "checkout-maintenance"),
    ("pipelines", f"{API}/deploys/pipelines", '"checkout"'),
    ("block windows", f"{API}/deploys/windows", "year-end"),
    ("break-glass requests", f"{API}/deploys/breakglass", '"checkout"'),
    ("docs", f"{API}/docs", "cache-the-checkout"),
    ("team docs", f"{API}/docs", "payments-plan"),
    ("teams", f"{API}/teams", '"payments"'),
    ("users", f"{API}/users", '"eve"'),
    ("audit trail", f"{API}/audit", "ticket"),
]

READS = [
    ("flag application", f"{API}/flags/apps/shop"),
    ("flag", f"{API}/flags/apps/shop/flags/checkout-v2"),
    ("flags of an app", f"{API}/flags/apps/shop/flags"),
    ("alarm", f"{API}/ops/alarms/checkout-errors"),
    ("alarm history", f"{API}/ops/alarms/checkout-errors/history"),
    ("ticket", f"{API}/ops/tickets/{{ticket}}"),
    ("ticket timeline", f"{API}/ops/tickets/{{ticket}}/timeline"),
    ("page", f"{API}/ops/oncall/pages/{{page}}"),
    ("on-call schedule", f"{API}/ops/oncall/schedules/primary"),
    ("scalable target", f"{API}/ops/scaling/targets/checkout-web"),
    ("silence", f"{API}/ops/silences/checkout-maintenance"),
    ("pipeline", f"{API}/deploys/pipelines/checkout"),
    ("pipeline timeline", f"{API}/deploys/pipelines/checkout/timeline"),
    ("block window", f"{API}/deploys/windows/{{window}}"),
    ("break-glass request", f"{API}/deploys/breakglass/{{breakglass}}"),
    ("draft doc", f"{API}/docs/{{doc}}"),
    ("team's draft doc", f"{API}/docs/{{team_doc}}"),
    ("doc comments", f"{API}/docs/{{doc}}/comments"),
    ("user", f"{API}/users/eve"),
]

# (what, method, path, body, status): 404 where the object is named (it does not exist for
# globex), 403 where globex names a team of acme to put something in.
WRITES = [
    ("create a flag", "POST", f"{API}/flags/apps/shop/flags", {"key": "evil"}, 404),
    ("kill a flag", "POST", f"{API}/flags/apps/shop/flags/checkout-v2/kill", {"reason": "x"}, 404),
    ("cut a ticket", "POST", f"{API}/ops/tickets", {"service": "checkout", "title": "x"}, 404),
    ("comment a ticket", "POST", f"{API}/ops/tickets/{{ticket}}/comments", {"text": "x"}, 404),
    ("resolve a ticket", "POST", f"{API}/ops/tickets/{{ticket}}/resolve", {"text": "x"}, 404),
    ("acknowledge a page", "POST", f"{API}/ops/oncall/pages/{{page}}/acknowledge", None, 404),
    (
        "silence every organisation's alarms",
        "POST",
        f"{API}/ops/silences",
        {"name": "quiet", "start": "2026-01-05T10:00:00", "end": "2026-01-05T12:00:00"},
        403,
    ),
    (
        "silence acme's alarm",
        "POST",
        f"{API}/ops/silences",
        {
            "name": "quiet",
            "start": "2026-01-05T10:00:00",
            "end": "2026-01-05T12:00:00",
            "alarms": ["checkout-errors"],
        },
        422,
    ),
    ("delete acme's silence", "DELETE", f"{API}/ops/silences/checkout-maintenance", None, 404),
    ("replace a pipeline", "PUT", f"{API}/deploys/pipelines/checkout", {"stages": STAGES}, 404),
    ("delete a window", "DELETE", f"{API}/deploys/windows/{{window}}", None, 404),
    (
        "approve break-glass",
        "POST",
        f"{API}/deploys/breakglass/{{breakglass}}/approve",
        {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"},
        404,
    ),
    ("deny break-glass", "POST", f"{API}/deploys/breakglass/{{breakglass}}/deny", {}, 404),
    (
        "comment a draft doc",
        "POST",
        f"{API}/docs/{{doc}}/comments",
        {"kind": "note", "body": "x"},
        404,
    ),
    ("reply to a comment", "POST", f"{API}/docs/comments/{{comment}}/replies", {"body": "x"}, 404),
    ("take over a doc", "PATCH", f"{API}/docs/{{team_doc}}", {"owners": ["gil"]}, 404),
    (
        "file a doc under acme's team",
        "POST",
        f"{API}/docs",
        {"title": "x", "body": BODY, "team": "payments"},
        403,
    ),
]


def _path(tenants: Tenants, template: str) -> str:
    return template.format(**tenants.ids)


@pytest.mark.parametrize("what, path, betrayal", LISTS, ids=[r[0] for r in LISTS])
def test_another_organisation_sees_nothing_in_lists(client, tenants, what, path, betrayal):
    response = client.get(path, headers=tenants.header("gil"))
    assert response.status_code == 200, response.text
    assert betrayal not in response.text
    own = client.get(path, headers=tenants.header("leo"))
    assert own.status_code == 200 and betrayal in own.text


@pytest.mark.parametrize("what, path", READS, ids=[r[0] for r in READS])
def test_another_organisation_reads_404(client, tenants, what, path):
    response = client.get(_path(tenants, path), headers=tenants.header("gil"))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert client.get(_path(tenants, path), headers=tenants.header("vic")).status_code == 200


@pytest.mark.parametrize("what, method, path, body, status", WRITES, ids=[r[0] for r in WRITES])
def test_another_organisation_cannot_write(client, tenants, db, what, method, path, body, status):
    before = _audit_count(db)
    response = client.request(
        method, _path(tenants, path), json=body, headers=tenants.header("gil")
    )
    assert response.status_code == status, response.text
    assert _audit_count(db) == before


def _audit_count(db) -> int:
    from sqlalchemy import func, select

    from mechanisms.core.tables import AuditRecord

    with db.transaction(write=False) as session:
        return session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()


def test_each_organisation_reads_its_own_audit_trail_and_admins_all(client, tenants):
    def records(who: str) -> list[dict[str, Any]]:
        response = client.get(f"{API}/audit?limit=500", headers=tenants.header(who))
        assert response.status_code == 200, response.text
        return response.json()["records"]

    def actors(who: str) -> set[str]:
        return {r["actor"] for r in records(who)}

    client.post(
        f"{API}/ops/tickets",
        json={"service": "checkout", "title": "from eve"},
        headers=tenants.header("eve"),
    )
    assert "eve[token:test]" in actors("vic")
    assert not {a for a in actors("gil") if a.startswith(("eve", "leo"))}
    assert {r["object_type"] for r in records("gil")} == {"team"}  # globex's own, and only
    assert "eve[token:test]" in actors("ada")
    # What the system did to acme's objects (a page opened for acme's ticket) is acme's too.
    page = f"{API}/audit?limit=500&object_type=page"
    assert client.get(page, headers=tenants.header("vic")).json()["records"]
    assert not client.get(page, headers=tenants.header("gil")).json()["records"]


# --- item 7: the pages (web UI) ---------------------------------------------------------

PAGES = [
    ("ticket", "/ops/tickets/{ticket}"),
    ("alarm", "/ops/alarms/checkout-errors"),
    ("flag application", "/flags/shop"),
    ("break-glass request", "/deploys/breakglass/{breakglass}"),
    ("deploy service", "/deploys/services/checkout"),
    ("draft doc", "/docs/{doc}"),
]
PAGE_LISTS = [
    ("tickets", "/ops/tickets", "EU cards fail"),
    ("flags", "/flags", "/flags/shop"),
    ("docs", "/docs", "cache-the-checkout"),
    ("deploys", "/deploys/services", "checkout"),
    ("silences", "/ops/silences", "checkout-maintenance"),
    ("metrics explorer", "/ops/metrics", "checkout_latency_ms"),
]


def _sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "login_csrf": login_csrf, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def test_pages_of_another_organisation_are_not_found(client, tenants):
    _sign_in(client, "gil")
    for what, path in PAGES:
        assert client.get(path.format(**tenants.ids)).status_code == 404, what
    for what, path, betrayal in PAGE_LISTS:
        response = client.get(path)
        assert response.status_code == 200, what
        assert betrayal not in response.text, what


def test_pages_of_ones_own_organisation_show(client, tenants):
    _sign_in(client, "vic")
    for what, path in PAGES:
        assert client.get(path.format(**tenants.ids)).status_code == 200, what
    for what, path, betrayal in PAGE_LISTS:
        assert betrayal in client.get(path).text, what


# --- item 8: every SDK route checks the credential and its organisation -------------------

SDK = "/sdk/shop/prod/ofrep/v1"
EVALUATIONS = [
    ("OFREP bulk", "POST", f"{SDK}/evaluate/flags"),
    ("OFREP single", "POST", f"{SDK}/evaluate/flags/checkout-v2"),
    ("OFREP configuration", "GET", f"{SDK}/configuration"),
    ("rule set", "GET", f"{API}/flags/apps/shop/environments/prod/ruleset"),
]
SDK_ROUTES = [
    *EVALUATIONS,
    ("rule set stream", "GET", f"{API}/flags/apps/shop/environments/prod/stream"),
    ("exposures", "POST", f"{API}/flags/apps/shop/environments/prod/exposures"),
]


def _sdk(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {"exposures": []} if path.endswith("exposures") else {"context": {"targetingKey": "u1"}}
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("what, method, path", SDK_ROUTES, ids=[r[0] for r in SDK_ROUTES])
def test_sdk_without_a_credential_is_401(client, tenants, what, method, path):
    response = _sdk(client, method, path, {})
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("what, method, path", SDK_ROUTES, ids=[r[0] for r in SDK_ROUTES])
def test_sdk_with_another_organisations_token_is_404(client, tenants, what, method, path):
    response = _sdk(client, method, path, tenants.header("gus"))
    assert response.status_code == 404, response.text
    assert "checkout-v2" not in response.text


@pytest.mark.parametrize("what, method, path", EVALUATIONS, ids=[r[0] for r in EVALUATIONS])
def test_sdk_with_a_viewer_scoped_token_of_the_organisation_evaluates(
    client, tenants, what, method, path
):
    response = _sdk(client, method, path, tenants.header("vic-viewer-scope"))
    assert response.status_code == 200, response.text
    if path.endswith("/evaluate/flags"):
        assert [f["key"] for f in response.json()["flags"]] == ["checkout-v2"]


# --- references by name cross no organisation either ----------------------------------


def _globex_alarm(run) -> None:
    run(alarms.create_service, "globex-web", "Globex web", "globex")
    run(
        alarms.create_alarm,
        "globex-latency",
        "globex-web",
        metric="latency",
        definition=ALARM_DEFINITION,
    )


def test_a_rollout_cannot_watch_a_typo_or_another_organisations_alarm(client, tenants, run):
    """A monitor naming an alarm the caller cannot see would leave the rollout unprotected
    (a typo) or let it read, and be rolled back by, another organisation's alarm."""
    _globex_alarm(run)
    path = f"{API}/flags/apps/shop/flags/checkout-v2/environments/beta/config"
    on = {"variants": {"on": True, "off": False}, "off_variant": "off"}
    on["fallthrough"] = {"variant": "on"}
    for name in ("checkout-errors-typo", "globex-latency"):
        body = {"config": on, "monitors": {"alarms": [name]}}
        refused = client.put(path, json=body, headers=tenants.header("leo"))
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["field"] == "monitors.alarms[0]"
        assert name in refused.json()["error"]["message"]
    body = {"config": on, "monitors": {"alarms": ["checkout-errors"]}}
    watched = client.put(path, json=body, headers=tenants.header("leo"))
    assert watched.status_code == 200, watched.text


def test_a_scaling_policy_reads_its_own_services_samples_and_visible_alarms(client, tenants, run):
    """A policy over another service's samples would read another organisation's numbers,
    and one over unlabelled samples could be driven by anyone who may push them; a policy
    that reacts to another organisation's alarm would scale when that alarm moves."""
    _globex_alarm(run)
    policy = {"name": "web-cpu", "target": "checkout-web", "metric": "cpu", "target_value": 50}
    leo = tenants.header("leo")
    cases = [
        ({"match": {"service": "globex-web"}}, "match.service"),
        ({"alarm": "globex-latency"}, "alarm"),
        ({"alarm": "checkout-errors-typo"}, "alarm"),
    ]
    for extra, field in cases:
        refused = client.post(f"{API}/ops/scaling/policies", json={**policy, **extra}, headers=leo)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["field"] == field
    made = client.post(
        f"{API}/ops/scaling/policies", json={**policy, "alarm": "checkout-errors"}, headers=leo
    )
    assert made.status_code == 201, made.text
    assert made.json()["match"] == {"service": "checkout"}


def test_another_organisations_samples_read_as_no_data(client, tenants, clock):
    """Asking for acme's series by name gives globex nothing: the samples of a service
    belong to its organisation as the service does."""
    params = {
        "name": "checkout_latency_ms",
        "match": "service=checkout",
        "statistic": "max",
        "start": (clock.now() - timedelta(hours=1)).isoformat(),
        "end": (clock.now() + timedelta(minutes=5)).isoformat(),
    }
    seen = {}
    for who in ("gil", "vic"):
        answer = client.get(f"{API}/ops/metrics/query", params=params, headers=tenants.header(who))
        assert answer.status_code == 200, answer.text
        seen[who] = [p["value"] for p in answer.json() if p["value"] is not None]
    assert seen == {"gil": [], "vic": [250.0]}
