"""`mech deploy …` as a CI job runs it: through a real server's API with MECH_URL and
MECH_TOKEN, never the database. The same scenario through the direct path (the database,
on the server) gives the same exit codes, --json answers and lines; the HTTP path opens no
database and loads no server code; a token or a server that is not there is one clear
line and exit 2."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from typer.testing import CliRunner

from mechanisms.cli import app as mech_app
from mechanisms.core.config import get_settings
from tests.conftest import seed_org, wipe
from tests.support.cli_process import Mech, Ran, mech_in_ci, serving_api
from tests.support.server import free_port, serving
from tests.test_cli_startup import loaded

from .conftest import FAILING, PASSING, create_checkout, ship

SERVER_CODE = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "pydantic_settings",
    "mechanisms.core.cli",
    "mechanisms.core.db",
    "mechanisms.core.accounts",
    "mechanisms.deploys.pipelines",
    "mechanisms.deploys.tables",
    "mechanisms.deploys.cli_direct",
    "mechanisms.ops",
)


@pytest.fixture
def server(app, db) -> Iterator[str]:
    with serving_api(app, db) as url:
        yield url


def direct(db_url: str, token: str) -> Mech:
    """`mech` on the server itself: the database, acting as the same token's user."""
    runner = CliRunner()

    def mech(*args: str, stdin: str | None = None) -> Ran:
        get_settings.cache_clear()
        env = {"MECH_DATABASE_URL": db_url, "MECH_TOKEN": token, "MECH_URL": None}
        result = runner.invoke(mech_app, list(args), input=stdin, env=env)
        get_settings.cache_clear()
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit
        ), result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    return mech


# --- one scenario, two paths ------------------------------------------------------------

SERVICE = ("--service", "checkout")
V1 = (*SERVICE, "--version", "v1")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")


def _stable(text: str) -> str:
    return TIMESTAMP.sub("<time>", " ".join(text.split()))


def scenario(mech: Mech, tmp_path: Path) -> list[tuple[str, int, Any]]:
    """What a pipeline does: register, upload, ask the gate, promote; plus a refusal and
    an input error. Each step: (step, exit code, --json answer or the line said)."""
    report = tmp_path / "junit.xml"

    def upload(xml: bytes) -> Ran:
        report.write_bytes(xml)
        return mech(
            "deploy", "tests", "upload", str(report), *V1, "--suite", "integration", "--json"
        )

    register = ("deploy", "versions", "register", *SERVICE, "--artifact", "v1")
    gate = ("deploy", "gate", *V1, "--stage", "beta")
    steps: list[tuple[str, Ran]] = [
        ("register", mech(*register, "--digest", "sha256:aaa", "--author", "sam", "--json")),
        ("register again", mech(*register, "--digest", "sha256:aaa", "--json")),
        ("gate without tests", mech(*gate, "--json")),
        ("gate without tests, said", mech(*gate)),
        ("upload failing", upload(FAILING)),
        ("gate failing", mech(*gate, "--json")),
        ("upload passing", upload(PASSING)),
        ("gate open", mech(*gate, "--json")),
        ("gate open, said", mech(*gate)),
        ("gate unknown stage", mech("deploy", "gate", *V1, "--stage", "nope")),
        ("gate naive instant", mech(*gate, "--at", "2026-01-05T10:00")),
        ("promote beta", mech("deploy", "promote", *V1, "--stage", "beta", "--json")),
        (
            "promote prod before the bake",
            mech("deploy", "promote", *V1, "--stage", "prod", "--json"),
        ),
        ("promote refused, said", mech("deploy", "promote", *V1, "--stage", "prod")),
        ("pipeline", mech("deploy", "pipeline", "show", "checkout", "--json")),
        ("versions", mech("deploy", "versions", "list", *SERVICE, "--json")),
        ("history", mech("deploy", "history", *SERVICE, "--json")),
    ]
    return [
        (name, ran.code, ran.json if ran.stdout.startswith(("{", "[")) else ran.said)
        for name, ran in steps
    ]


def test_the_api_path_answers_as_the_database_path_does(db, clock, run, server, tmp_path):
    org = seed_org(db, clock)
    create_checkout(run)
    through_database = scenario(direct(db.url, org.tokens["robot"]), tmp_path)

    wipe(db)
    org = seed_org(db, clock)
    create_checkout(run)
    never_opened = tmp_path / "ci-holds-no-database.db"
    through_api = scenario(mech_in_ci(server, org.tokens["robot"], never_opened), tmp_path)

    codes = {name: code for name, code, _ in through_api}
    assert codes == {name: code for name, code, _ in through_database}
    assert codes["register"] == codes["upload passing"] == codes["promote beta"] == 0
    assert codes["gate without tests"] == codes["gate failing"] == 1
    assert codes["promote prod before the bake"] == 1
    assert codes["register again"] == codes["gate unknown stage"] == 2
    assert codes["gate naive instant"] == 2 and codes["gate open"] == 0
    stable = json.loads(_stable(json.dumps(through_api)))
    assert stable == json.loads(_stable(json.dumps(through_database)))
    answers = {name: answer for name, _, answer in through_api}
    assert answers["register"]["registered_by"] == "robot[token:ci]"
    assert [b["code"] for b in answers["gate failing"]["blockers"]] == ["tests_failed"]
    assert answers["promote prod before the bake"]["deployment"] is None
    assert "sha256:aaa is registered already" in answers["register again"]
    assert not never_opened.exists()


def test_every_other_deploy_command_works_through_the_api(db, clock, run, server, tmp_path):
    """Pipelines, windows (iCalendar in and out) and break-glass with people's tokens."""
    org = seed_org(db, clock)
    create_checkout(run)
    never_opened = tmp_path / "ci-holds-no-database.db"
    eve = mech_in_ci(server, org.tokens["eve"], never_opened)
    leo = mech_in_ci(server, org.tokens["leo"], never_opened)
    ada = mech_in_ci(server, org.tokens["ada"], never_opened)
    from mechanisms.ops import tickets

    ticket = run(tickets.create, "checkout", "card payments fail", 1)
    # Dropping beta's bake and prod's suite is a protected change: a leader citing a ticket.
    stages = json.dumps([{"name": "beta", "required_suites": ["integration"]}, {"name": "prod"}])
    lower = ("deploy", "pipeline", "set", "checkout", "--file", "-")
    assert eve(*lower, stdin=stages).code == 2
    because = ("--ticket", str(ticket.id), "--why", "beta bakes elsewhere now")
    assert leo(*lower, *because, stdin=stages).code == 0
    eve("deploy", "versions", "register", *SERVICE, "--artifact", "v1", "--digest", "sha256:aaa")
    named = eve("deploy", "versions", "name-author", *SERVICE, "--version", "v1", "--author", "SAM")
    assert named.code == 0, named.stderr
    uploaded = eve(
        "deploy", "tests", "upload", "-", *V1, "--suite", "integration", stdin=PASSING.decode()
    )
    assert uploaded.code == 0, uploaded.stderr
    assert eve("deploy", "promote", *V1, "--stage", "beta").code == 0
    frozen = eve(
        "deploy", "windows", "freeze", "--scope", "service", "--target", "checkout",
        "--until", "2099-01-01T00:00:00Z", "--reason", "migration", "--json",
    )  # fmt: skip
    assert frozen.code == 0, frozen.stderr
    listed = eve("deploy", "windows", "list", "--service", "checkout", "--json").json
    assert [w["reason"] for w in listed] == ["migration"]
    exported = eve("deploy", "windows", "export", "--service", "checkout")
    assert exported.code == 0 and "BEGIN:VCALENDAR" in exported.stdout
    # Deleting the freeze in force takes two leaders.
    delete = ("deploy", "windows", "delete", frozen.json["id"], *because, "--json")
    assert eve(*delete).code == 2
    asked = leo(*delete)
    assert asked.code == 0 and asked.json["status"] == "pending", asked.stderr
    approve = ("deploy", "changes", "approve", str(asked.json["id"]), "--json")
    approved = ada(*approve, "--digest", asked.json["digest"])
    assert approved.code == 0 and approved.json["status"] == "applied", approved.stderr
    calendar = tmp_path / "freeze.ics"
    calendar.write_text(exported.stdout)
    imported = eve(
        "deploy", "windows", "import", str(calendar), "--scope", "team", "--target", "payments",
        "--json",
    )  # fmt: skip
    assert imported.code == 0 and imported.json[0]["scope_key"] == "acme/payments"

    requested = eve(
        "deploy", "breakglass", "request", *V1, "--stage", "prod", "--reason", "EU fix",
        "--ticket", str(ticket.id), "--json",
    )  # fmt: skip
    assert requested.code == 0, requested.stderr
    request_id = str(requested.json["id"])
    shown = ("--service", "checkout", "--stage", "prod", "--digest", "sha256:aaa", "--json")
    for who in ("leo", "ada"):
        approver = mech_in_ci(server, org.tokens[who], never_opened)
        approved = approver("deploy", "breakglass", "approve", request_id, *shown)
        assert approved.code == 0, approved.stderr
    assert approved.json["status"] == "granted"
    through = eve("deploy", "promote", *V1, "--stage", "prod", "--json")
    assert through.code == 0 and through.json["decision"]["break_glass"] is True
    reviews = eve("deploy", "breakglass", "reviews", "--json").json
    closed = eve(
        "deploy", "breakglass", "close-review", str(reviews[0]["id"]),
        "--what-happened", "shipped", "--why", "SEV1",
    )  # fmt: skip
    assert closed.code == 0, closed.stderr
    history = eve("deploy", "history", *SERVICE, "--json").json
    assert history[0]["kind"] == "breakglass_review_closed"
    assert not never_opened.exists()


# --- what a CI job sees when something is wrong ----------------------------------------


def test_a_token_the_server_does_not_accept_is_one_line_and_exit_2(db, org, server, tmp_path):
    mech = mech_in_ci(server, "mech_not-a-real-token", tmp_path / "none.db")
    refused = mech("deploy", "gate", *V1, "--stage", "beta")
    assert refused.code == 2
    assert "MECH_TOKEN" in refused.said and "Traceback" not in refused.stderr
    anonymous = mech_in_ci(server, None, tmp_path / "none.db")(
        "deploy", "gate", *V1, "--stage", "beta"
    )
    assert anonymous.code == 2 and "sign in or send an API token" in anonymous.said


def test_a_server_out_of_reach_is_one_line_and_exit_2(tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = mech_in_ci(nowhere, "mech_x", tmp_path / "none.db")(
        "deploy", "gate", *V1, "--stage", "beta"
    )
    assert unreachable.code == 2
    assert f"cannot reach the Mechanisms server at {nowhere}" in unreachable.said
    assert "Traceback" not in unreachable.stderr
    not_http = mech_in_ci("ftp://example.org", "mech_x", tmp_path / "none.db")
    wrong = not_http("deploy", "gate", *V1, "--stage", "beta")
    assert wrong.code == 2 and "is not an http(s) address" in wrong.said


def test_a_proxy_in_front_of_the_server_is_one_line_and_exit_2(tmp_path):
    """A login page where the API should be, or a gateway error: no traceback."""
    proxy = FastAPI()

    @proxy.get("/{path:path}")
    def login_page() -> HTMLResponse:
        return HTMLResponse("<html>Sign in to continue</html>")

    @proxy.post("/{path:path}")
    def gateway_error() -> HTMLResponse:
        return HTMLResponse("<html>Bad Gateway</html>", status_code=502)

    with serving(proxy) as url:
        mech = mech_in_ci(url, "mech_x", tmp_path / "none.db")
        page = mech("deploy", "gate", *V1, "--stage", "beta")
        failed = mech("deploy", "promote", *V1, "--stage", "beta")
    assert page.code == 2 and "without JSON: is it a Mechanisms server?" in page.said
    assert failed.code == 2 and f"the server at {url} failed (502)" in failed.said
    assert "Traceback" not in page.stderr + failed.stderr


def test_the_api_path_loads_no_server_code(db, org, checkout, run, server, tmp_path):
    """A whole gate call through the API imports httpx and the CLI's modules, not
    SQLAlchemy, FastAPI or any service (issue #18: a cold gate call under 0.4 s)."""
    ship(run)
    env = {
        "MECH_URL": server,
        "MECH_TOKEN": org.tokens["robot"],
        "MECH_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}",
    }
    code, found = loaded(tmp_path, "deploy", "gate", *V1, "--stage", "beta", "--json", env=env)
    assert code == 0  # the server answered: the gate is open
    assert "mechanisms.deploys.cli_remote" in found and "httpx" in found
    server_code = [m for m in found for h in SERVER_CODE if m == h or m.startswith(h + ".")]
    assert server_code == []


def test_each_command_says_which_path_it_takes():
    for command in (("gate",), ("promote",), ("versions", "register"), ("tests", "upload")):
        shown = CliRunner().invoke(mech_app, ["deploy", *command, "--help"], env={"COLUMNS": "300"})
        said = " ".join(shown.stdout.split())
        assert "Act through this Mechanisms server's API as MECH_TOKEN's user" in said
        assert "Without it the command opens MECH_DATABASE_URL directly, on the server" in said
