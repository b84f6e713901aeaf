"""How many statements a gate call sends, pinned on both backends.

The gate answers a large org in a few milliseconds only while each call makes few round
trips to the database (benchmarks/deploys_gate_service.py: on PostgreSQL each costs about
half a millisecond), so a change that adds one fails here rather than in a timing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal, Role
from mechanisms.deploys import pipelines

from .conftest import ship


@contextmanager
def statements_sent(db) -> Iterator[list[str]]:
    sent: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


AUTHOR_SUBQUERY = re.compile(r"\(SELECT users\.username\s+FROM users\s+WHERE [^)]*\)")


def tables_read(sent: list[str]) -> list[str]:
    """Each statement by the first table it reads (what a failure message should show).
    SQLite's BEGIN is left out: on PostgreSQL the driver sends it, unseen here."""
    found = []
    for statement in sent:
        if statement.strip().upper() == "BEGIN":
            continue
        if re.search(r"\bFROM\s+deploys_pipelines\s+JOIN\s+deploys_stages\b", statement):
            found.append(GATE_ROWS)  # its owner chain (WITH) and probes come before its FROM
            continue
        # A version's author (a username) comes in its own row as a scalar subquery.
        statement = AUTHOR_SUBQUERY.sub("", statement)
        first = re.search(r"\bFROM\s+(\w+)", statement)
        exists = statement.lstrip().upper().startswith("SELECT EXISTS")
        found.append(("exists: " if exists else "") + (first.group(1) if first else statement))
    return found


def gate_reads(db, clock, principal: Principal, stage: str, version: str) -> list[str]:
    """The statements of one gate call in its own read transaction, as the API makes it."""
    with statements_sent(db) as sent, db.transaction(write=False) as session:
        pipelines.gate(Ctx(session, principal, clock.now()), "checkout", stage, version)
    return tables_read(sent)


@pytest.fixture
def vic(as_user) -> Principal:
    """An org viewer's read-only token: who asks the gate from CI."""
    principal = as_user("vic")
    return Principal(
        principal.user_id, principal.username, via="token", token_name="read", scope=Role.VIEWER
    )


GATE_ROWS = "pipeline, stages, version, owner, probes"

# The pipeline's stages, each row with the version, the owning team and org (a recursive
# query) and whether there are test runs, approvals or break-glass requests (one EXISTS
# each); the windows on the scope's chain; the stages' deployments.
BASE = [GATE_ROWS, "deploys_windows", "deploys_deployments"]


def test_a_gate_call_with_nothing_recorded_yet_sends_three_statements(
    db, clock, checkout, vic, run
):
    run(pipelines.register_version, "checkout", "v1", "sha256:aaa")
    assert gate_reads(db, clock, vic, "beta", "sha256:aaa") == BASE


def test_only_what_exists_is_read_and_an_artifact_id_costs_two_more(db, clock, checkout, vic, run):
    ship(run)  # a passing integration run for sha256:aaa
    reads = gate_reads(db, clock, vic, "beta", "sha256:aaa")
    assert reads == [GATE_ROWS, "deploys_test_runs", *BASE[1:]]
    # The rows asked about the digest "v1"; the artifact's newest digest is looked up and
    # probed on its own.
    by_artifact = gate_reads(db, clock, vic, "beta", "v1")
    assert by_artifact == [
        GATE_ROWS,
        "deploys_versions",
        "exists: deploys_test_runs",
        "deploys_test_runs",
        *BASE[1:],
    ]
