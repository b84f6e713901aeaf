"""The deploys HTTP API: the gate for CI, JUnit uploads (body and multipart), windows with
iCalendar, promotions and break-glass over HTTP."""

from __future__ import annotations

from datetime import timedelta

from mechanisms.deploys import pipelines
from mechanisms.ops import tickets

from .conftest import FAILING, PASSING

API = "/api/v1/deploys"


def register(client, headers, artifact="v1", digest="sha256:aaa"):
    body = {"service": "checkout", "artifact": artifact, "digest": digest, "author": "sam"}
    return client.post(f"{API}/versions", json=body, headers=headers)


def upload(client, headers, xml, version="v1", multipart=False):
    params = {"service": "checkout", "version": version, "suite": "integration"}
    if multipart:
        return client.post(
            f"{API}/tests", params=params, files={"file": ("r.xml", xml)}, headers=headers
        )
    return client.post(
        f"{API}/tests",
        params=params,
        content=xml,
        headers={**headers, "content-type": "application/xml"},
    )


def gate(client, headers, stage="beta", **extra):
    params = {"service": "checkout", "stage": stage, "version": "v1", **extra}
    return client.get(f"{API}/gate", params=params, headers=headers)


def test_the_gate_answers_every_blocker_and_clears_with_tests(client, org, checkout):
    eve = org.header("eve")
    assert register(client, eve).status_code == 201
    blocked = gate(client, eve)
    assert blocked.status_code == 200
    assert blocked.json()["allowed"] is False
    assert [b["code"] for b in blocked.json()["blockers"]] == ["tests_missing"]
    assert "mech deploy tests upload" in blocked.json()["blockers"][0]["clear"]
    failed = upload(client, eve, FAILING, multipart=True)
    assert failed.status_code == 201 and failed.json()["problems"][0]["message"].startswith(
        "402 != 200"
    )
    assert [b["code"] for b in gate(client, eve).json()["blockers"]] == ["tests_failed"]
    assert upload(client, eve, PASSING).json()["passed"] is True
    assert gate(client, eve).json()["allowed"] is True
    assert gate(client, eve, at="2026-01-05T09:00:00").status_code == 422


def test_a_blocked_promotion_is_a_409_with_the_gates_blockers_and_stays_recorded(
    client, org, run, checkout
):
    eve = org.header("eve")
    register(client, eve)
    body = {"service": "checkout", "stage": "beta", "version": "v1"}
    refused = client.post(f"{API}/promotions", json=body, headers=eve)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "promotion_blocked" and "integration" in error["message"]
    assert error["details"] == gate(client, eve).json()
    assert run(pipelines.stage_states, "checkout")[0]["deployment"] is None
    # The refusal is kept: the timeline and the audit trail say it was tried and blocked.
    assert run(pipelines.timeline, "checkout")[0].kind == "promotion_blocked"
    # A drill keeps its meaning: blocked is refused the same way, passing deploys nothing.
    drill = client.post(f"{API}/promotions", json={**body, "drill": True}, headers=eve)
    assert drill.status_code == 409 and drill.json()["error"]["details"]["drill"] is True
    upload(client, eve, PASSING)
    drill = client.post(f"{API}/promotions", json={**body, "drill": True}, headers=eve)
    assert drill.status_code == 200 and drill.json()["deployment"] is None
    assert drill.json()["decision"]["allowed"] is True
    promoted = client.post(f"{API}/promotions", json=body, headers=eve)
    assert promoted.status_code == 200 and promoted.json()["deployment"]["digest"] == "sha256:aaa"


def test_malformed_junit_is_a_4xx_naming_the_reason(client, org, checkout):
    eve = org.header("eve")
    register(client, eve)
    refused = upload(client, eve, b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite>&a;</testsuite>')
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unsafe_xml"
    listed = client.get(
        f"{API}/tests", params={"service": "checkout", "version": "v1"}, headers=eve
    )
    assert listed.json() == []


def test_windows_over_http_with_ical_round_trip(client, org, clock, checkout):
    eve = org.header("eve")
    register(client, eve)
    upload(client, eve, PASSING)
    weekend = {
        "scope": "service",
        "target": "checkout",
        "id": "weekend",
        "reason": "no weekend deploys",
        "definition": {
            "kind": "recurring",
            "rrule": "FREQ=WEEKLY;BYDAY=FR",
            "dtstart": "2026-01-02T15:00:00",
            "end_time": "09:00",
            "days_later": 3,
            "tz": "Europe/Berlin",
        },
    }
    assert client.post(f"{API}/windows", json=weekend, headers=eve).status_code == 201
    friday = gate(client, eve, at="2026-01-09T16:00:00+01:00").json()
    assert friday["window"]["state"] == "BLOCKED"
    assert friday["window"]["next_transition"] == "2026-01-12T08:00:00+00:00"
    exported = client.get(f"{API}/windows/export.ics", params={"service": "checkout"}, headers=eve)
    assert exported.headers["content-type"].startswith("text/calendar")
    assert client.delete(f"{API}/windows/weekend", headers=eve).status_code == 204
    imported = client.post(
        f"{API}/windows/import",
        params={"scope": "stage", "target": "checkout/prod"},
        content=exported.content,
        headers={**eve, "content-type": "text/calendar"},
    )
    assert (
        imported.status_code == 201
        and imported.json()[0]["scope_key"] == "acme/payments/checkout/prod"
    )
    bad = {**weekend, "id": "bad", "definition": {**weekend["definition"], "tz": "Europe/Atlantis"}}
    refused = client.post(f"{API}/windows", json=bad, headers=eve)
    assert refused.status_code == 422 and refused.json()["error"]["details"]["field"] == "tz"
    vic = client.post(f"{API}/windows", json={**weekend, "id": "v"}, headers=org.header("vic"))
    assert vic.status_code == 403


def test_break_glass_over_http(client, org, clock, checkout, run):
    eve, leo, ada, robot = (org.header(u) for u in ("eve", "leo", "ada", "robot"))
    register(client, eve)
    upload(client, eve, PASSING)
    assert (
        client.post(
            f"{API}/promotions",
            json={"service": "checkout", "stage": "beta", "version": "v1"},
            headers=eve,
        ).json()["deployment"]["state"]
        == "baking"
    )
    clock.advance(minutes=31)
    freeze = {
        "scope": "org",
        "target": "acme",
        "until": (clock.now() + timedelta(days=1)).isoformat(),
        "reason": "freeze",
    }
    assert client.post(f"{API}/windows/freeze", json=freeze, headers=ada).status_code == 201
    ticket = run(tickets.create, "checkout", "EU cards fail", 2)
    ask = {
        "service": "checkout",
        "stage": "prod",
        "version": "v1",
        "reason": "EU fix",
        "ticket": f"#{ticket.id}",
    }
    created = client.post(f"{API}/breakglass", json=ask, headers=eve)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    shown = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    assert (
        client.post(f"{API}/breakglass/{request_id}/approve", json=shown, headers=robot).status_code
        == 403
    )
    client.post(f"{API}/breakglass/{request_id}/approve", json=shown, headers=leo)
    granted = client.post(f"{API}/breakglass/{request_id}/approve", json=shown, headers=ada).json()
    assert granted["status"] == "granted" and granted["leader_approved"] is True
    promoted = client.post(
        f"{API}/promotions",
        json={"service": "checkout", "stage": "prod", "version": "v1"},
        headers=eve,
    ).json()
    assert (
        promoted["decision"]["break_glass"] is True
        and promoted["deployment"]["break_glass"] == request_id
    )
    [review] = client.get(f"{API}/reviews", headers=eve).json()
    closed = client.post(
        f"{API}/reviews/{review['id']}/close",
        json={"what_happened": "shipped", "why": "SEV2"},
        headers=eve,
    )
    assert closed.json()["closed_by"].startswith("eve")
    kinds = [
        e["kind"]
        for e in client.get(f"{API}/pipelines/checkout/timeline", headers=org.header("vic")).json()
    ]
    assert "breakglass_used" in kinds and "rolled_back" not in kinds
