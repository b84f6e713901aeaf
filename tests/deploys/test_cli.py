"""`mech deploy …`: the gate's exit codes (0 open, 1 blocked, 2 usage), test uploads,
promotions, windows and break-glass with people's tokens."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings
from mechanisms.deploys import pipelines
from mechanisms.ops import tickets

from .conftest import FAILING, PASSING


@pytest.fixture
def mech(db, org, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    monkeypatch.delenv("MECH_TOKEN", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args, input=None: runner.invoke(app, list(args), input=input)
    get_settings.cache_clear()


def said(result):
    return " ".join(result.output.split())


GATE = ("deploy", "gate", "--service", "checkout", "--stage", "beta", "--version", "v1")


def test_the_gate_exits_0_open_1_blocked_2_usage(mech, checkout, tmp_path):
    registered = mech(
        "deploy",
        "versions",
        "register",
        "--service",
        "checkout",
        "--artifact",
        "v1",
        "--digest",
        "sha256:aaa",
        "--json",
    )
    assert registered.exit_code == 0, registered.output
    blocked = mech(*GATE)
    assert blocked.exit_code == 1
    assert "BLOCKED" in said(blocked) and "to clear: run integration against sha256:aaa" in said(
        blocked
    )
    report = tmp_path / "junit.xml"
    report.write_bytes(FAILING)
    uploaded = mech(
        "deploy",
        "tests",
        "upload",
        str(report),
        "--service",
        "checkout",
        "--version",
        "v1",
        "--suite",
        "integration",
        "--json",
    )
    assert uploaded.exit_code == 0 and json.loads(uploaded.stdout)["failures"] == 1
    as_json = mech(*GATE, "--json")
    assert as_json.exit_code == 1
    assert [b["code"] for b in json.loads(as_json.stdout)["blockers"]] == ["tests_failed"]
    report.write_bytes(PASSING)
    mech(
        "deploy",
        "tests",
        "upload",
        str(report),
        "--service",
        "checkout",
        "--version",
        "v1",
        "--suite",
        "integration",
    )
    opened = mech(*GATE)
    assert opened.exit_code == 0 and "OPEN" in said(opened)
    assert (
        mech(
            "deploy", "gate", "--service", "checkout", "--stage", "nope", "--version", "v1"
        ).exit_code
        == 2
    )
    assert mech(*GATE, "--at", "2026-01-05T10:00").exit_code == 2
    assert mech("deploy", "gate", "--service", "checkout").exit_code == 2
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<testsuite><unclosed>")
    refused = mech(
        "deploy",
        "tests",
        "upload",
        str(bad),
        "--service",
        "checkout",
        "--version",
        "v1",
        "--suite",
        "integration",
    )
    assert refused.exit_code == 2


def test_promote_and_break_glass_from_the_terminal(mech, checkout, org, run, clock, tmp_path):
    mech(
        "deploy",
        "versions",
        "register",
        "--service",
        "checkout",
        "--artifact",
        "v1",
        "--digest",
        "sha256:aaa",
        "--author",
        "sam",
    )
    report = tmp_path / "junit.xml"
    report.write_bytes(PASSING)
    mech(
        "deploy",
        "tests",
        "upload",
        str(report),
        "--service",
        "checkout",
        "--version",
        "v1",
        "--suite",
        "integration",
    )
    # beta has no bake in this pipeline, so prod may follow at once. Dropping the bake is a
    # protected change: a leader's token and a ticket, not the local operator.
    ticket = run(tickets.create, "checkout", "card payments fail", 1)
    stages = tmp_path / "pipeline.json"
    stages.write_text(
        json.dumps([{"name": "beta", "required_suites": ["integration"]}, {"name": "prod"}])
    )
    lower = ("deploy", "pipeline", "set", "checkout", "--file", str(stages))
    assert mech(*lower).exit_code == 2
    because = ("--ticket", str(ticket.id), "--why", "beta bakes elsewhere now")
    lowered = mech(*lower, *because, "--token", org.tokens["leo"])
    assert lowered.exit_code == 0, lowered.output
    promoted = mech(
        "deploy", "promote", "--service", "checkout", "--stage", "beta", "--version", "v1", "--json"
    )
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["deployment"]["state"] == "succeeded"
    frozen = mech(
        "deploy",
        "windows",
        "freeze",
        "--scope",
        "service",
        "--target",
        "checkout",
        "--until",
        "2099-01-01T00:00:00Z",
        "--reason",
        "migration",
    )
    assert frozen.exit_code == 0, frozen.output
    prod = ("deploy", "promote", "--service", "checkout", "--stage", "prod", "--version", "v1")
    blocked = mech(*prod)
    assert blocked.exit_code == 1 and "migration" in said(blocked)
    # The refused attempt is a fact on the timeline, from the terminal as from the API.
    assert run(pipelines.timeline, "checkout")[0].kind == "promotion_blocked"
    ask = (
        "deploy",
        "breakglass",
        "request",
        "--service",
        "checkout",
        "--stage",
        "prod",
        "--version",
        "v1",
        "--reason",
        "EU fix",
        "--ticket",
        str(ticket.id),
        "--json",
    )
    # The local operator is no person: break-glass needs someone's token.
    assert mech(*ask).exit_code == 2
    requested = mech(*ask, "--token", org.tokens["eve"])
    assert requested.exit_code == 0, requested.output
    request_id = str(json.loads(requested.stdout)["id"])
    shown = ("--service", "checkout", "--stage", "prod", "--digest", "sha256:aaa", "--json")
    for who in ("leo", "ada"):
        approved = mech(
            "deploy", "breakglass", "approve", request_id, *shown, "--token", org.tokens[who]
        )
        assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["status"] == "granted"
    through = mech(*prod, "--token", org.tokens["eve"], "--json")
    assert through.exit_code == 0 and json.loads(through.stdout)["decision"]["break_glass"] is True
    reviews = json.loads(mech("deploy", "breakglass", "reviews", "--json").stdout)
    closed = mech(
        "deploy",
        "breakglass",
        "close-review",
        str(reviews[0]["id"]),
        "--what-happened",
        "shipped",
        "--why",
        "SEV1",
    )
    assert closed.exit_code == 0
    history = json.loads(mech("deploy", "history", "--service", "checkout", "--json").stdout)
    assert history[0]["kind"] == "breakglass_review_closed"


def test_windows_from_the_terminal_with_ical(mech, checkout, tmp_path):
    weekend = json.dumps(
        {
            "kind": "recurring",
            "rrule": "FREQ=WEEKLY;BYDAY=FR",
            "dtstart": "2026-01-02T15:00",
            "end_time": "09:00",
            "days_later": 3,
            "tz": "Europe/Berlin",
        }
    )
    added = mech(
        "deploy",
        "windows",
        "add",
        "--scope",
        "org",
        "--target",
        "acme",
        "--definition",
        weekend,
        "--reason",
        "weekend",
        "--id",
        "weekend",
        "--json",
    )
    assert added.exit_code == 0, added.output
    exported = mech("deploy", "windows", "export")
    assert "RRULE:FREQ=WEEKLY;BYDAY=FR" in exported.stdout
    assert mech("deploy", "windows", "delete", "weekend").exit_code == 0
    calendar = tmp_path / "freeze.ics"
    calendar.write_text(exported.stdout)
    imported = mech(
        "deploy",
        "windows",
        "import",
        str(calendar),
        "--scope",
        "team",
        "--target",
        "payments",
        "--json",
    )
    assert (
        imported.exit_code == 0 and json.loads(imported.stdout)[0]["scope_key"] == "acme/payments"
    )
    bad = mech(
        "deploy",
        "windows",
        "add",
        "--scope",
        "org",
        "--target",
        "acme",
        "--definition",
        '{"kind": "recurring", "rrule": "FREQ=DAILY", "dtstart": "2026-01-01T00:00", "duration_minutes": 60, "tz": "Nowhere/City"}',
    )
    assert bad.exit_code == 2 and "Nowhere/City" in said(bad)


def test_an_unknown_author_exits_2_and_a_missing_one_is_named_from_the_terminal(mech, checkout):
    register = ("deploy", "versions", "register", "--service", "checkout", "--artifact", "v1")
    unknown = mech(*register, "--digest", "sha256:aaa", "--author", "Sam Smith")
    assert unknown.exit_code == 2 and "Sam Smith" in said(unknown)
    assert mech(*register, "--digest", "sha256:aaa").exit_code == 0
    name = ("deploy", "versions", "name-author", "--service", "checkout", "--version", "v1")
    named = mech(*name, "--author", " SAM@acme.example ", "--json")
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["author"] == "sam"
    assert mech(*name, "--author", "eve").exit_code == 2  # a known author is kept
