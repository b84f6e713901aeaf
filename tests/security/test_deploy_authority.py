"""Issue #14, items 2-4: leader authority comes from the credential, a version's author is an
account, and break-glass rests on a ticket that justifies it. Each test sends the requests
an attacker would send, over HTTP, and checks the refusal and that nothing counted; then
the legitimate path still works. Every test runs on SQLite and PostgreSQL (``db``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from mechanisms.core import accounts, migrate
from mechanisms.deploys import pipelines, windows
from mechanisms.deploys.tables import Version
from mechanisms.ops import alarms, tickets
from tests.deploys.conftest import PASSING
from tests.docs.conftest import BODY

API = "/api/v1/deploys"
TARGET = {"service": "checkout", "stage": "prod"}


class Acme:
    """The org fixture's acme (leo leads it, eve engineers in payments) plus lena, who leads
    payments and holds a leader token and an engineer-scoped one, max, another payments
    engineer, checkout frozen in prod, and tickets of every kind."""

    def __init__(self, client, org, run, clock) -> None:
        self.client, self.org = client, org
        run(accounts.create_user, "lena", email="Lena@Acme.example")
        run(accounts.set_membership, "payments", "lena", "leader")
        run(accounts.create_user, "max")
        run(accounts.set_membership, "payments", "max", "engineer")
        org.tokens["lena"] = run(accounts.create_token, "lena", "full", "leader")[1]
        org.tokens["lena-engineer-scope"] = run(accounts.create_token, "lena", "ci", "engineer")[1]
        org.tokens["max"] = run(accounts.create_token, "max", "test", "engineer")[1]
        run(accounts.create_team, "search", "Search", parent="acme")
        run(accounts.create_team, "globex", "Globex")
        for key, team in (
            ("checkout", "payments"),
            ("search", "search"),
            ("intranet", "acme"),
            ("billing", "globex"),
        ):
            run(alarms.create_service, key, key.title(), team)
        run(
            pipelines.set_pipeline,
            "checkout",
            [{"name": "beta", "required_suites": ["integration"]}, {"name": "prod"}],
        )
        self.ticket = {
            "sev1": run(tickets.create, "checkout", "EU cards fail", 1).id,
            "sev3": run(tickets.create, "checkout", "slow receipts page", 3).id,
            "resolved": run(tickets.create, "checkout", "an old outage", 1).id,
            "other_team": run(tickets.create, "search", "search is stale", 1).id,
            "other_org": run(tickets.create, "billing", "globex billing down", 1).id,
            "org_wide": run(tickets.create, "intranet", "acme-wide SSO outage", 2).id,
        }
        run(tickets.resolve, self.ticket["resolved"], "fixed")
        self.run, self.clock = run, clock

    def header(self, who: str) -> dict[str, str]:
        return self.org.header(who)

    def post(self, path: str, who: str, body: dict | None = None):
        return self.client.post(f"{API}{path}", json=body or {}, headers=self.header(who))

    def register(self, digest: str, who: str = "eve", **author: str):
        body = {"service": "checkout", "artifact": digest, "digest": digest, **author}
        return self.post("/versions", who, body)

    def ready_in_beta_and_frozen(self, digest: str) -> None:
        """The version passed beta; prod is frozen, so break-glass is its only way."""
        self.run(pipelines.upload_tests, "checkout", digest, "integration", PASSING)
        self.run(pipelines.promote, "checkout", "beta", digest)
        self.run(
            windows.freeze, "stage", "checkout/prod", self.clock.now() + timedelta(days=2), "x"
        )

    def request(self, digest: str, ticket: str = "sev1", who: str = "eve"):
        body = {**TARGET, "version": digest, "reason": "EU card fix"}
        return self.post("/breakglass", who, {**body, "ticket": str(self.ticket[ticket])})

    def approve(self, request_id: int, digest: str, who: str):
        return self.post(f"/breakglass/{request_id}/approve", who, {**TARGET, "digest": digest})

    def shipped(self, digest: str = "sha256:aaa", author: str = "sam") -> int:
        """A version by ``author``, ready and blocked only by the freeze, and eve's request."""
        assert self.register(digest, author=author).status_code == 201
        self.ready_in_beta_and_frozen(digest)
        filed = self.request(digest)
        assert filed.status_code == 201, filed.json()
        return filed.json()["id"]


@pytest.fixture
def acme(client, org, run, clock) -> Acme:
    run(accounts.create_user, "sam")
    return Acme(client, org, run, clock)


def error(response) -> str:
    return response.json()["error"]["code"]


# --- item 2: leader authority comes from the credential -------------------------------


def test_a_leaders_engineer_scoped_token_cannot_deny(acme):
    request_id = acme.shipped()
    denied = acme.post(f"/breakglass/{request_id}/deny", "lena-engineer-scope", {"reason": "no"})
    assert denied.status_code == 403 and error(denied) == "not_a_leader"
    assert (
        acme.client.get(f"{API}/breakglass/{request_id}", headers=acme.header("eve")).json()[
            "status"
        ]
        == "pending"
    )
    # The same person with a leader-scoped credential may.
    vetoed = acme.post(f"/breakglass/{request_id}/deny", "lena", {"reason": "wait"})
    assert vetoed.status_code == 200 and vetoed.json()["denied_by"] == "lena"


def test_a_leaders_engineer_scoped_approval_never_counts_as_the_leaders(acme):
    request_id = acme.shipped()
    # Accepted as an engineer's approval, never as the leader's the rule asks for, and the
    # answer says so.
    accepted = acme.approve(request_id, "sha256:aaa", "lena-engineer-scope")
    assert accepted.status_code == 200
    standing = accepted.json()["your_approval"]
    assert (standing["counts"], standing["as_leader"]) == (True, False)
    assert "scoped below leader" in standing["why"]
    after = acme.approve(request_id, "sha256:aaa", "max").json()
    assert after["status"] == "pending" and after["leader_approved"] is False
    promoted = acme.post("/promotions", "eve", {**TARGET, "version": "sha256:aaa"})
    assert promoted.status_code == 409
    assert promoted.json()["error"]["details"]["allowed"] is False
    # A leader approving with a leader-scoped credential completes the rule.
    granted = acme.approve(request_id, "sha256:aaa", "leo").json()
    assert granted["status"] == "granted" and granted["leader_approved"] is True
    assert granted["your_approval"] == {"counts": True, "as_leader": True, "why": None}


def test_a_leaders_engineer_scoped_token_cannot_lift_a_denial(acme):
    request_id = acme.shipped()
    assert acme.post(f"/breakglass/{request_id}/deny", "leo", {"reason": "no"}).status_code == 200
    lifted = acme.post(f"/breakglass/{request_id}/lift-denial", "lena-engineer-scope")
    assert lifted.status_code == 403 and error(lifted) == "not_a_leader"
    assert acme.post(f"/breakglass/{request_id}/lift-denial", "eve").status_code == 403


def test_a_leaders_engineer_scoped_token_cannot_give_a_leaders_stage_approval(acme):
    stages = [
        {"name": "beta", "required_suites": ["integration"]},
        {"name": "prod", "approval": {"roles": ["leader"], "count": 1}},
    ]
    acme.run(pipelines.set_pipeline, "checkout", stages)
    assert acme.register("sha256:aaa", author="sam").status_code == 201
    acme.run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", PASSING)
    acme.run(pipelines.promote, "checkout", "beta", "sha256:aaa")
    body = {**TARGET, "version": "sha256:aaa"}
    refused = acme.post("/approvals", "lena-engineer-scope", body)
    assert refused.status_code == 403
    params = {**TARGET, "version": "sha256:aaa"}
    gate = acme.client.get(f"{API}/gate", params=params, headers=acme.header("eve")).json()
    assert [b["code"] for b in gate["blockers"]] == ["approval_required"]
    assert acme.post("/approvals", "lena", body).status_code == 201
    assert acme.client.get(f"{API}/gate", params=params, headers=acme.header("eve")).json()[
        "allowed"
    ]


def test_the_author_cannot_give_their_own_versions_stage_approval(acme):
    """The same rule as break-glass: whoever wrote the change cannot be its approver."""
    stages = [
        {"name": "beta", "required_suites": ["integration"]},
        {"name": "prod", "approval": {"roles": ["leader"], "count": 1}},
    ]
    acme.run(pipelines.set_pipeline, "checkout", stages)
    assert acme.register("sha256:aaa", author="LENA").status_code == 201
    acme.run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", PASSING)
    acme.run(pipelines.promote, "checkout", "beta", "sha256:aaa")
    body = {**TARGET, "version": "sha256:aaa"}
    refused = acme.post("/approvals", "lena", body)
    assert refused.status_code == 403 and error(refused) == "author_approval"
    params = {**TARGET, "version": "sha256:aaa"}
    gate = acme.client.get(f"{API}/gate", params=params, headers=acme.header("eve")).json()
    assert [b["code"] for b in gate["blockers"]] == ["approval_required"]


# --- item 3: authorship is a fact ------------------------------------------------------


@pytest.mark.parametrize("typed", [" LENA ", "Lena", "lena@acme.EXAMPLE", "  LENA@ACME.EXAMPLE "])
def test_a_typed_author_resolves_to_the_account_so_lena_cannot_approve_her_change(acme, typed):
    registered = acme.register("sha256:aaa", author=typed)
    assert registered.status_code == 201 and registered.json()["author"] == "lena"
    acme.ready_in_beta_and_frozen("sha256:aaa")
    request_id = acme.request("sha256:aaa").json()["id"]
    approved = acme.approve(request_id, "sha256:aaa", "lena")
    assert approved.status_code == 403 and error(approved) == "author_approval"
    assert (
        acme.client.get(f"{API}/breakglass/{request_id}", headers=acme.header("eve")).json()[
            "approvals"
        ]
        == []
    )


@pytest.mark.parametrize("typed", ["Lena Lead", "nobody", "lena@globex.example"])
def test_an_author_who_is_no_account_is_refused_by_name(acme, typed):
    refused = acme.register("sha256:aaa", author=typed)
    assert refused.status_code == 422 and error(refused) == "unknown_author"
    assert refused.json()["error"]["details"] == {"field": "author", "value": typed.strip()}
    listed = acme.client.get(
        f"{API}/versions", params={"service": "checkout"}, headers=acme.header("eve")
    )
    assert listed.json() == []


def test_a_version_without_author_cannot_break_glass_until_an_engineer_names_them(acme):
    assert acme.register("sha256:aaa").json()["author"] is None  # CI omitted it
    acme.ready_in_beta_and_frozen("sha256:aaa")
    # An authorless version is promoted normally where nothing blocks it...
    assert acme.client.get(
        f"{API}/gate",
        params={"service": "checkout", "stage": "beta", "version": "sha256:aaa"},
        headers=acme.header("eve"),
    ).json()["allowed"]
    # ...but cannot be broken-glass: lena could otherwise approve her own change.
    refused = acme.request("sha256:aaa")
    assert refused.status_code == 409 and error(refused) == "author_unknown"
    # A viewer cannot name the author; an engineer of the owning team does, audited.
    body = {"service": "checkout", "version": "sha256:aaa", "author": "LENA"}
    assert acme.post("/versions/author", "vic", body).status_code == 403
    named = acme.post("/versions/author", "eve", body)
    assert named.status_code == 200 and named.json()["author"] == "lena"
    # Once known, the author is never replaced (whoever could swap it could self-approve).
    swapped = acme.post("/versions/author", "eve", {**body, "author": "max"})
    assert swapped.status_code == 409 and error(swapped) == "author_known"
    timeline = acme.client.get(f"{API}/pipelines/checkout/timeline", headers=acme.header("eve"))
    assert "version_author_named" in [e["kind"] for e in timeline.json()]
    request_id = acme.request("sha256:aaa").json()["id"]
    assert error(acme.approve(request_id, "sha256:aaa", "lena")) == "author_approval"


# --- item 4: the ticket justifies the request; a denial stands --------------------------


@pytest.mark.parametrize(
    ("ticket", "code"),
    [
        ("other_org", "unknown_ticket"),
        ("sev3", "ticket_severity"),
        ("resolved", "ticket_resolved"),
        ("other_team", "ticket_unrelated"),
    ],
)
def test_a_ticket_that_does_not_justify_the_request_is_refused(acme, ticket, code):
    assert acme.register("sha256:aaa", author="sam").status_code == 201
    acme.ready_in_beta_and_frozen("sha256:aaa")
    refused = acme.request("sha256:aaa", ticket)
    assert refused.status_code == 422 and error(refused) == code
    assert refused.json()["error"]["details"]["field"] == "ticket"
    listed = acme.client.get(f"{API}/breakglass", headers=acme.header("eve"))
    assert listed.json() == []


@pytest.mark.parametrize("ticket", ["sev1", "org_wide"])
def test_a_justifying_ticket_is_cited_on_both_sides(acme, ticket):
    assert acme.register("sha256:aaa", author="sam").status_code == 201
    acme.ready_in_beta_and_frozen("sha256:aaa")
    filed = acme.request("sha256:aaa", ticket)
    assert filed.status_code == 201
    ticket_id = acme.ticket[ticket]
    assert filed.json()["ticket"]["reference"] == str(ticket_id)
    seen = acme.client.get(f"/api/v1/ops/tickets/{ticket_id}", headers=acme.header("eve"))
    link = seen.json()["links"][f"breakglass_{filed.json()['id']}"]
    assert link["url"] == f"/deploys/breakglass/{filed.json()['id']}"
    events = acme.client.get(
        f"/api/v1/ops/tickets/{ticket_id}/timeline", headers=acme.header("eve")
    ).json()
    assert "cited" in [e["kind"] for e in events]


def test_a_denied_request_cannot_be_filed_again_until_a_leader_lifts_the_denial(acme):
    request_id = acme.shipped()
    assert acme.post(f"/breakglass/{request_id}/deny", "leo", {"reason": "no"}).status_code == 200
    again = acme.request("sha256:aaa")
    assert again.status_code == 409 and error(again) == "denial_standing"
    assert again.json()["error"]["details"] == {"request": request_id, "denied_by": "leo"}
    lifted = acme.post(f"/breakglass/{request_id}/lift-denial", "lena", {"reason": "smaller fix"})
    assert lifted.status_code == 200 and lifted.json()["denial_lifted_by"] == "lena"
    assert lifted.json()["status"] == "denied"  # the denied request stays denied
    twice = acme.post(f"/breakglass/{request_id}/lift-denial", "leo")
    assert twice.status_code == 409 and error(twice) == "denial_lifted"
    timeline = acme.client.get(f"{API}/pipelines/checkout/timeline", headers=acme.header("eve"))
    assert "breakglass_denial_lifted" in [e["kind"] for e in timeline.json()]
    assert acme.request("sha256:aaa").status_code == 201


# --- the migration: typed authors already stored ---------------------------------------


def _migrate(db, step: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.upgrade if step == "head" else command.downgrade)(config, step)


def test_stored_typed_authors_become_accounts_or_unknown(db, clock):
    """A version stored with a typed author before 0011 names its account only when exactly
    one account answers to it; any other becomes unknown (and so cannot break glass)."""
    _migrate(db, "0010_authorship-1")
    try:
        with db.engine.begin() as conn:
            for name, email in (
                ("lena", "Lena@Acme.example"),
                ("kim", "ops@x.io"),
                ("jo", "OPS@x.io"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO users (username, display_name, email, is_bot, is_site_admin,"
                        " active, created_at) VALUES (:n, :n, :e, false, false, true, :at)"
                    ),
                    {"n": name, "e": email, "at": clock.now()},
                )
            for digest, author in (
                ("sha256:1", " LENA "),
                ("sha256:2", "lena@acme.EXAMPLE"),
                ("sha256:3", "Lena Lead"),
                ("sha256:4", "ops@x.io"),  # two accounts share it: nobody can tell which
                ("sha256:5", None),
            ):
                conn.execute(
                    text(
                        "INSERT INTO deploys_versions (service_key, artifact, digest, author,"
                        " registered_by, created_at) VALUES ('checkout', :d, :d, :a, 'ci', :at)"
                    ),
                    {"d": digest, "a": author, "at": clock.now()},
                )
    finally:
        _migrate(db, "head")
    with db.transaction(write=False) as session:
        authors = dict(session.execute(select(Version.digest, Version.author)).all())
    assert authors == {
        "sha256:1": "lena",
        "sha256:2": "lena",
        "sha256:3": None,
        "sha256:4": None,
        "sha256:5": None,
    }


def test_a_leaders_engineer_scoped_token_cannot_decide_a_doc_as_its_teams_leader(client, org, run):
    """Docs decisions read leadership through the same capped role: an org leader who owns
    nothing decides a team's doc only with a leader-scoped credential."""
    org.tokens["leo-engineer-scope"] = run(accounts.create_token, "leo", "ci", "engineer")[1]
    payload = {"title": "Cache the checkout page", "body": BODY, "team": "payments"}
    created = client.post("/api/v1/docs", json=payload, headers=org.header("eve"))
    assert created.status_code == 201, created.text
    slug = created.json()["slug"]
    client.post(f"/api/v1/docs/{slug}/submit", headers=org.header("eve"))
    decision = {"outcome": "accepted", "door": "two_way"}
    refused = client.post(
        f"/api/v1/docs/{slug}/decide", json=decision, headers=org.header("leo-engineer-scope")
    )
    assert refused.status_code == 403
    decided = client.post(f"/api/v1/docs/{slug}/decide", json=decision, headers=org.header("leo"))
    assert decided.status_code == 200 and decided.json()["status"] == "accepted"
