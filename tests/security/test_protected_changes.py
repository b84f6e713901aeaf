"""Issue #14, item 1: freezes and stage requirements are as strong as the paths around them.

Each attack is the request (or command) an engineer or a lone leader would send to lift a
block: deleting or moving the window that holds prod, replacing the pipeline without the suite
that failed, importing a calendar over the window, the CLI's local operator. Each is refused
and the gate still says BLOCKED; the legitimate paths (a leader citing a ticket, a second
leader approving the exact proposal) still work and show on the pipeline's timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core import accounts
from mechanisms.core.config import get_settings
from mechanisms.deploys import pipelines
from mechanisms.ops import tickets
from tests.deploys.conftest import FAILING, PASSING, STAGES, checkout, work  # noqa: F401

API = "/api/v1/deploys"
HOLD = "hold-prod"


@pytest.fixture
def ticket(run, checkout):  # noqa: F811
    return run(tickets.create, "checkout", "EU card payments fail", 2).id


def _iso(at):
    return at.isoformat()


def hold_prod(client, org, clock, starts=timedelta(hours=-1), lasts=timedelta(hours=10)):
    """The window holding checkout/prod (in force now unless ``starts`` says later)."""
    start = clock.now() + starts
    body = {
        "scope": "stage",
        "target": "checkout/prod",
        "id": HOLD,
        "definition": {"kind": "one_off", "start": _iso(start), "end": _iso(start + lasts)},
        "reason": "year-end freeze",
    }
    created = client.post(f"{API}/windows", json=body, headers=org.header("eve"))
    assert created.status_code == 201, created.text
    return created.json()


def ship(client, org, xml=PASSING):
    eve = org.header("eve")
    body = {"service": "checkout", "artifact": "v1", "digest": "sha256:aaa", "author": "sam"}
    assert client.post(f"{API}/versions", json=body, headers=eve).status_code == 201
    params = {"service": "checkout", "version": "v1", "suite": "integration"}
    headers = {**eve, "content-type": "application/xml"}
    assert client.post(f"{API}/tests", params=params, content=xml, headers=headers).is_success


def prod_blockers(client, org):
    params = {"service": "checkout", "stage": "prod", "version": "v1"}
    answer = client.get(f"{API}/gate", params=params, headers=org.header("vic")).json()
    return {b["code"] for b in answer["blockers"]}, answer["window"]["state"]


def timeline(client, org):
    rows = client.get(f"{API}/pipelines/checkout/timeline", headers=org.header("vic")).json()
    return {r["kind"]: r for r in reversed(rows)}


def because(ticket_id):
    return {"ticket": str(ticket_id), "reason": "the freeze was set on the wrong stage"}


def error(response):
    return response.json()["error"]["code"]


# --- windows --------------------------------------------------------------------------


def test_an_engineer_cannot_delete_the_window_holding_prod(client, org, clock, ticket):
    hold_prod(client, org, clock)
    ship(client, org)
    for who in ("eve", "robot", "ada-viewer-scope"):
        refused = client.delete(
            f"{API}/windows/{HOLD}", params=because(ticket), headers=org.header(who)
        )
        assert refused.status_code == 403, (who, refused.text)
        assert error(refused) in ("protected_change", "not_human", "forbidden")
    refused = client.delete(f"{API}/windows/{HOLD}", headers=org.header("eve"))
    assert error(refused) == "protected_change"
    assert "in force" in refused.json()["error"]["message"]
    assert refused.json()["error"]["details"]["protection"]["level"] == "two_person"
    assert client.get(f"{API}/windows/{HOLD}", headers=org.header("vic")).status_code == 200
    assert prod_blockers(client, org)[1] == "BLOCKED"


def test_an_engineer_cannot_move_the_window_into_the_past(client, org, clock, ticket):
    hold_prod(client, org, clock)
    ship(client, org)
    past = clock.now() - timedelta(days=3)
    moved = {
        "definition": {
            "kind": "one_off",
            "start": _iso(past),
            "end": _iso(past + timedelta(hours=1)),
        },
        "ticket": str(ticket),
        "change_reason": "wrong dates",
    }
    refused = client.put(f"{API}/windows/{HOLD}", json=moved, headers=org.header("eve"))
    assert refused.status_code == 403 and error(refused) == "protected_change"
    # Ending it in an hour instead of in nine lifts part of the block in force too.
    sooner = {
        "definition": {
            "kind": "one_off",
            "start": _iso(clock.now() - timedelta(hours=1)),
            "end": _iso(clock.now() + timedelta(hours=1)),
        }
    }
    refused = client.put(f"{API}/windows/{HOLD}", json=sooner, headers=org.header("eve"))
    assert refused.status_code == 403
    clock.advance(hours=2)
    assert prod_blockers(client, org)[1] == "BLOCKED"


def test_a_window_starting_within_a_day_needs_a_leader_citing_a_ticket(
    run, client, org, clock, ticket
):
    hold_prod(client, org, clock, starts=timedelta(hours=2))
    eve, leo = org.header("eve"), org.header("leo")
    refused = client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=eve)
    assert refused.status_code == 403 and error(refused) == "protected_change"
    assert refused.json()["error"]["details"]["protection"]["level"] == "leader"
    # A leader's credential acts with its scope: an engineer-scoped token is no leader.
    scoped = run(accounts.create_token, "leo", "ci", "engineer")[1]
    narrow = {"Authorization": f"Bearer {scoped}"}
    refused = client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=narrow)
    assert refused.status_code == 403 and "limited to engineer" in refused.text
    no_ticket = client.delete(f"{API}/windows/{HOLD}", headers=leo)
    assert no_ticket.status_code == 422 and error(no_ticket) == "ticket_required"
    # A leader alone may: nothing is lifted now, and it shows with the ticket it cites.
    assert (
        client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=leo).status_code
        == 204
    )
    applied = timeline(client, org)["protected_change_applied"]
    assert applied["actor"] == "leo[token:test]"
    assert applied["details"]["ticket"] == ticket
    assert applied["details"]["protection"]["level"] == "leader"
    notes = client.get(f"/api/v1/ops/tickets/{ticket}/timeline", headers=leo).json()
    assert any(HOLD in n["text"] for n in notes)


def test_a_leader_alone_lifting_the_block_in_force_gets_a_pending_request(
    client, org, clock, ticket
):
    hold_prod(client, org, clock)
    ship(client, org)
    leo, ada = org.header("leo"), org.header("ada")
    asked = client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=leo)
    assert asked.status_code == 202, asked.text
    change = asked.json()
    assert change["status"] == "pending" and change["requester"] == "leo"
    assert change["ticket"] == ticket and change["services"] == ["checkout"]
    assert client.get(f"{API}/windows/{HOLD}", headers=leo).status_code == 200
    assert prod_blockers(client, org)[1] == "BLOCKED"
    approve = f"{API}/changes/{change['id']}/approve"
    shown = {"digest": change["digest"]}
    # Not the requester, not a bot, not an engineer, not a leader's read-only credential.
    assert error(client.post(approve, json=shown, headers=leo)) == "self_approval"
    for who in ("robot", "eve", "ada-viewer-scope"):
        assert client.post(approve, json=shown, headers=org.header(who)).status_code == 403, who
    # Only the exact proposal shown.
    other = client.post(approve, json={"digest": "sha256:other"}, headers=ada)
    assert other.status_code == 409 and error(other) == "wrong_target"
    assert prod_blockers(client, org)[1] == "BLOCKED"
    approved = client.post(approve, json=shown, headers=ada)
    assert approved.status_code == 200 and approved.json()["status"] == "applied"
    assert client.get(f"{API}/windows/{HOLD}", headers=leo).status_code == 404
    assert prod_blockers(client, org)[1] == "OPEN"
    seen = timeline(client, org)
    assert seen["protected_change_requested"]["details"]["requester"] == "leo"
    applied = seen["protected_change_applied"]["details"]
    assert applied["leaders"] == ["leo", "ada"] and applied["ticket"] == ticket
    again = client.post(approve, json=shown, headers=ada)
    assert again.status_code == 409
    page = client.get("/deploys/services/checkout", headers=org.header("vic")).text
    assert f"ticket #{ticket}" in page and "leaders leo, ada" in page


def test_an_org_wide_freeze_lifted_shows_on_every_pipeline_it_held(client, org, clock, ticket):
    eve, leo, ada = org.header("eve"), org.header("leo"), org.header("ada")
    freeze = {
        "scope": "org",
        "target": "acme",
        "until": _iso(clock.now() + timedelta(hours=5)),
        "reason": "year end",
    }
    window = client.post(f"{API}/windows/freeze", json=freeze, headers=leo).json()
    assert client.delete(f"{API}/windows/{window['id']}", headers=eve).status_code == 403
    asked = client.delete(f"{API}/windows/{window['id']}", params=because(ticket), headers=leo)
    assert asked.status_code == 202 and asked.json()["services"] == ["checkout"]
    denied = client.post(
        f"{API}/changes/{asked.json()['id']}/deny", json={"reason": "no"}, headers=ada
    )
    assert denied.json()["status"] == "denied"
    assert client.get(f"{API}/windows/{window['id']}", headers=eve).status_code == 200
    assert timeline(client, org)["protected_change_denied"]["details"]["by"] == "ada[token:test]"


def test_a_request_expires_and_an_approval_never_applies_a_stale_proposal(
    db, client, org, clock, ticket
):
    hold_prod(client, org, clock)
    eve, leo, ada = org.header("eve"), org.header("leo"), org.header("ada")
    first = client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=leo).json()
    clock.advance(minutes=61)
    late = client.post(
        f"{API}/changes/{first['id']}/approve", json={"digest": first["digest"]}, headers=ada
    )
    assert late.status_code == 409
    work(db, clock)
    assert client.get(f"{API}/changes/{first['id']}", headers=eve).json()["status"] == "expired"
    # Asked again; meanwhile an engineer extends the window (raising is free): the approval
    # finds the window changed and applies nothing.
    second = client.delete(f"{API}/windows/{HOLD}", params=because(ticket), headers=leo).json()
    start = clock.now() - timedelta(hours=2)
    longer = {
        "definition": {
            "kind": "one_off",
            "start": _iso(start),
            "end": _iso(start + timedelta(days=2)),
        }
    }
    assert client.put(f"{API}/windows/{HOLD}", json=longer, headers=eve).status_code == 200
    stale = client.post(
        f"{API}/changes/{second['id']}/approve", json={"digest": second["digest"]}, headers=ada
    )
    assert stale.status_code == 200 and stale.json()["status"] == "invalidated"
    assert client.get(f"{API}/windows/{HOLD}", headers=eve).status_code == 200
    assert timeline(client, org)["protected_change_refused"]["details"]["change"] == second["id"]


def test_an_icalendar_import_cannot_replace_the_window_in_force(client, org, clock, checkout):  # noqa: F811
    hold_prod(client, org, clock)
    past = b"""BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//x//EN\r\nBEGIN:VEVENT\r\nUID:hold-prod\r\nDTSTART:20250101T000000Z\r\nDTEND:20250101T010000Z\r\nSUMMARY:moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"""
    imported = client.post(
        f"{API}/windows/import",
        params={"scope": "stage", "target": "checkout/prod"},
        content=past,
        headers={**org.header("eve"), "content-type": "text/calendar"},
    )
    assert imported.status_code in (409, 422) and error(imported) == "duplicate_window"
    window = client.get(f"{API}/windows/{HOLD}", headers=org.header("eve")).json()
    assert window["definition"]["start"].startswith(_iso(clock.now() - timedelta(hours=1))[:16])


def test_from_the_terminal_the_operator_is_refused_and_two_leaders_apply(
    db,
    client,
    org,
    clock,
    monkeypatch,
    ticket,
):
    clock.set(datetime.now(UTC))  # the CLI reads the system clock
    hold_prod(client, org, clock)
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    monkeypatch.delenv("MECH_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        mech = CliRunner().invoke
        delete = ["deploy", "windows", "delete", HOLD, "--ticket", str(ticket), "--why", "moved"]
        refused = mech(app, delete)
        assert refused.exit_code == 2 and "person" in " ".join(refused.output.split())
        asked = mech(app, [*delete, "--token", org.tokens["leo"], "--json"])
        assert asked.exit_code == 0, asked.output
        change = json.loads(asked.stdout)
        assert change["status"] == "pending"
        assert client.get(f"{API}/windows/{HOLD}", headers=org.header("eve")).status_code == 200
        approve = ["deploy", "changes", "approve", str(change["id"]), "--digest", change["digest"]]
        assert mech(app, [*approve, "--token", org.tokens["leo"]]).exit_code == 2
        approved = mech(app, [*approve, "--token", org.tokens["ada"], "--json"])
        assert approved.exit_code == 0 and json.loads(approved.stdout)["status"] == "applied"
    finally:
        get_settings.cache_clear()
    assert client.get(f"{API}/windows/{HOLD}", headers=org.header("eve")).status_code == 404


def test_adding_and_widening_freezes_stays_free_for_engineers(client, org, clock, checkout):  # noqa: F811
    eve = org.header("eve")
    hold_prod(client, org, clock)
    start = clock.now() - timedelta(hours=1)
    longer = {
        "definition": {
            "kind": "one_off",
            "start": _iso(start),
            "end": _iso(start + timedelta(days=3)),
        }
    }
    assert client.put(f"{API}/windows/{HOLD}", json=longer, headers=eve).status_code == 200
    later = clock.now() + timedelta(days=10)
    body = {
        "scope": "service",
        "target": "checkout",
        "id": "next-month",
        "definition": {
            "kind": "one_off",
            "start": _iso(later),
            "end": _iso(later + timedelta(hours=4)),
        },
    }
    assert client.post(f"{API}/windows", json=body, headers=eve).status_code == 201
    # Far from now, an engineer may still move or delete it.
    assert client.delete(f"{API}/windows/next-month", headers=eve).status_code == 204


# --- pipelines ------------------------------------------------------------------------


def without_suites():
    return {"stages": [{**s, "required_suites": []} for s in STAGES]}


def test_an_engineer_cannot_replace_the_pipeline_without_its_required_suite(client, org, ticket):
    ship(client, org, FAILING)
    eve = org.header("eve")
    refused = client.put(
        f"{API}/pipelines/checkout",
        json={**without_suites(), "ticket": str(ticket), "change_reason": "flaky"},
        headers=eve,
    )
    assert refused.status_code == 403 and error(refused) == "protected_change"
    assert "integration" in refused.json()["error"]["message"]
    stages = client.get(f"{API}/pipelines/checkout", headers=eve).json()["stages"]
    assert stages[1]["required_suites"] == ["integration"]
    assert "tests_failed" in prod_blockers(client, org)[0]
    # Nor drop a stage, its bake or its alarms; raising them stays free.
    for lowered in (
        {"stages": STAGES[1:]},
        {"stages": [{**STAGES[0], "bake_minutes": 0}, STAGES[1]]},
        {"stages": [{**STAGES[0], "alarms": []}, STAGES[1]]},
    ):
        assert client.put(f"{API}/pipelines/checkout", json=lowered, headers=eve).status_code == 403
    raised = [STAGES[0], {**STAGES[1], "required_suites": ["integration", "smoke"]}]
    assert (
        client.put(f"{API}/pipelines/checkout", json={"stages": raised}, headers=eve).status_code
        == 200
    )


def test_a_leader_alone_cannot_drop_the_suite_that_blocks_prod(client, org, ticket):
    ship(client, org, FAILING)
    leo, ada = org.header("leo"), org.header("ada")
    asked = client.put(
        f"{API}/pipelines/checkout",
        json={**without_suites(), "ticket": str(ticket), "change_reason": "suite retired"},
        headers=leo,
    )
    assert asked.status_code == 202, asked.text
    change = asked.json()
    assert change["protection"]["level"] == "two_person"
    assert "tests_failed" in prod_blockers(client, org)[0]
    approved = client.post(
        f"{API}/changes/{change['id']}/approve", json={"digest": change["digest"]}, headers=ada
    )
    assert approved.json()["status"] == "applied"
    stages = client.get(f"{API}/pipelines/checkout", headers=leo).json()["stages"]
    assert stages[1]["required_suites"] == []
    applied = timeline(client, org)["protected_change_applied"]["details"]
    assert applied["leaders"] == ["leo", "ada"] and applied["ticket"] == ticket


def test_a_leader_may_lower_a_requirement_that_blocks_nothing_now(run, client, org, ticket):
    leo = org.header("leo")
    ship(client, org)  # passing: the suite blocks nothing now
    lowered = client.put(
        f"{API}/pipelines/checkout",
        json={**without_suites(), "ticket": str(ticket), "change_reason": "suite retired"},
        headers=leo,
    )
    assert lowered.status_code == 200, lowered.text
    assert run(pipelines.get_pipeline, "checkout") is not None
    assert (
        timeline(client, org)["protected_change_applied"]["details"]["protection"]["level"]
        == "leader"
    )
    assert json.dumps(lowered.json()).count("integration") == 0


def test_the_attack_of_the_issue_replayed(client, org, clock, ticket):
    """Delete the window holding prod while break-glass waits for its second approval, then
    promote: the delete is refused and the promotion stays blocked."""
    stages = [{**STAGES[0], "bake_minutes": 0}, STAGES[1]]
    leo, eve = org.header("leo"), org.header("eve")
    lowered = {"stages": stages, **{"ticket": str(ticket), "change_reason": "no bake"}}
    assert client.put(f"{API}/pipelines/checkout", json=lowered, headers=leo).status_code == 200
    ship(client, org)
    beta = {"service": "checkout", "stage": "beta", "version": "v1"}
    assert client.post(f"{API}/promotions", json=beta, headers=eve).json()["deployment"]
    hold_prod(client, org, clock)
    ask = {**beta, "stage": "prod", "reason": "EU fix", "ticket": str(ticket)}
    request = client.post(f"{API}/breakglass", json=ask, headers=eve).json()
    shown = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    approve = f"{API}/breakglass/{request['id']}/approve"
    assert client.post(approve, json=shown, headers=leo).json()["status"] == "pending"
    deleted = client.delete(f"{API}/windows/{HOLD}", headers=eve)
    assert deleted.status_code == 403 and error(deleted) == "protected_change"
    promoted = client.post(f"{API}/promotions", json={**beta, "stage": "prod"}, headers=eve)
    assert promoted.status_code == 409 and error(promoted) == "promotion_blocked"
    assert "block_window" in {b["code"] for b in promoted.json()["error"]["details"]["blockers"]}
