"""Issue #14, item 6: a CI job holds an API token, never the database.

Whoever controls a pipeline holds what the job holds. With MECH_URL and MECH_TOKEN the
`mech deploy …` commands act through the API, so the pipeline can do only what the
token's user may do there: each attack below is the command such a person would run, and
the server refuses it as it refuses the same request from any client. The commands that
open the database refuse to run at all while MECH_URL is set, so a CI job has no path to
the tables (a freeze, an approval, the audit trail) around the API's checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mechanisms.deploys import pipelines, windows
from tests.deploys.conftest import PASSING, STAGES, create_checkout, ship
from tests.support.cli_process import mech_in_ci, serving_api

UNTIL_2099 = datetime(2099, 1, 1, tzinfo=UTC)
GATE_PROD = ("deploy", "gate", "--service", "checkout", "--stage", "prod", "--version", "v1")


@pytest.fixture
def server(app, db) -> Iterator[str]:
    with serving_api(app, db) as url:
        yield url


@pytest.fixture
def ci(server, org, run, tmp_path):
    """mech as the payments team's CI bot (an engineer-scoped token), with checkout's v1
    registered and tested, and the file its MECH_DATABASE_URL names (which must stay absent)."""
    create_checkout(run)
    ship(run)
    database = tmp_path / "ci-holds-no-database.db"
    yield mech_in_ci(server, org.tokens["robot"], database)
    assert not database.exists(), "a command opened the database instead of the API"


def test_a_ci_token_cannot_delete_the_org_freeze(ci, run):
    # The org's leaders froze every deploy (here the operator on the server does it).
    frozen = run(windows.freeze, "org", "acme", UNTIL_2099, "year-end freeze")
    attack = ci("deploy", "windows", "delete", frozen.uid)
    assert attack.code == 2 and "needs the engineer role in team acme" in attack.said
    rewrite = ci(
        "deploy", "windows", "update", frozen.uid, "--definition",
        '{"kind": "one_off", "start": "2000-01-01T00:00", "end": "2000-01-02T00:00", "tz": "UTC"}',
    )  # fmt: skip
    assert rewrite.code == 2
    assert [w.uid for w in run(windows.list_windows, None, None)] == [frozen.uid]
    still = ci(*GATE_PROD, "--json")
    assert still.code == 1 and "block_window" in [b["code"] for b in still.json["blockers"]]


def test_a_ci_token_cannot_approve_a_stage_for_a_leader(ci, run):
    prod_needs_a_leader = [STAGES[0], {**STAGES[1], "approval": {"roles": ["leader"], "count": 1}}]
    run(pipelines.set_pipeline, "checkout", prod_needs_a_leader)
    attack = ci("deploy", "approve", "--service", "checkout", "--stage", "prod", "--version", "v1")
    assert attack.code == 2 and "needs leader" in attack.said
    assert "approval_required" in [b["code"] for b in ci(*GATE_PROD, "--json").json["blockers"]]


def test_a_read_only_token_cannot_register_or_upload(server, org, run, tmp_path):
    create_checkout(run)
    database = tmp_path / "ci-holds-no-database.db"
    reader = mech_in_ci(server, org.tokens["vic-viewer-scope"], database)
    register = ("deploy", "versions", "register", "--service", "checkout")
    attack = reader(*register, "--artifact", "v9", "--digest", "sha256:999")
    assert attack.code == 2
    assert run(pipelines.list_versions, "checkout") == []
    upload = ("deploy", "tests", "upload", "-", "--service", "checkout", "--version", "v9")
    assert reader(*upload, "--suite", "integration", stdin=PASSING.decode()).code == 2
    assert not database.exists()


@pytest.mark.parametrize(
    "command",
    [
        ("token", "create", "ada", "--scope", "admin"),
        ("user", "add", "mallory", "--bot", "--admin"),
        ("team", "member", "add", "acme", "robot", "--role", "leader"),
        ("audit", "verify"),
        ("db", "upgrade"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_commands_that_open_the_database_refuse_to_run_with_mech_url(ci, command):
    attack = ci(*command)
    assert attack.code == 2
    assert "Unset MECH_URL" in attack.said and "Traceback" not in attack.stderr


def test_the_ci_token_still_does_its_job(ci, run):
    """The legitimate path: the bot registers, uploads, asks the gate and promotes."""
    assert ci("deploy", "versions", "register", "--service", "checkout", "--artifact", "v2",
              "--digest", "sha256:bbb").code == 0  # fmt: skip
    promoted = ci(
        "deploy", "promote", "--service", "checkout", "--stage", "beta", "--version", "v1",
        "--json",
    )  # fmt: skip
    assert promoted.code == 0 and promoted.json["deployment"]["promoted_by"].startswith("robot")
    assert {v.artifact for v in run(pipelines.list_versions, "checkout")} == {"v1", "v2"}


def test_a_token_is_never_sent_in_clear_text_to_another_machine(tmp_path):
    """A MECH_URL of plain http to another host would hand the CI token to anyone on the
    path; the CLI refuses before it sends anything, unless the operator opts in."""
    mech = mech_in_ci("http://mech.example.org", "mech_secret", tmp_path / "none.db")
    refused = mech(*GATE_PROD)
    assert refused.code == 2
    assert "clear text" in refused.said and "https://" in refused.said
    assert "Traceback" not in refused.stderr
