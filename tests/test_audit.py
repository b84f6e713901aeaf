"""The audit trail: every change appends a hash-chained record; tampering is found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select, text, update

from mechanisms.core import accounts, audit
from mechanisms.core import db as db_module
from mechanisms.core.db import Database
from mechanisms.core.tables import AuditRecord


def _verify(db: Database) -> audit.VerifyResult:
    with db.transaction(write=False) as session:
        return audit.verify(session)


def _records(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT seq, action FROM audit_records ORDER BY seq"))
        ]


def test_every_change_appends_one_chained_record(db, org, run):
    before = len(_records(db))
    run(accounts.create_team, "search", "Search", parent="acme")
    run(accounts.set_membership, "search", "eve", "leader")
    actions = [a for _, a in _records(db)[before:]]
    assert actions == ["team.created", "team.member_set"]
    result = _verify(db)
    assert result.ok and result.checked == len(_records(db))


def test_records_show_the_change_field_by_field(db, org, run):
    run(accounts.set_membership, "payments", "eve", "leader")
    with db.transaction(write=False) as session:
        newest = audit.browse(session, audit.AuditFilter(action="team.member_set", limit=1))[0]
    assert newest.details["changes"] == {"role": ["engineer", "leader"]}
    assert newest.details["user"] == "eve"
    assert newest.actor == "system:test"


def test_a_failed_change_leaves_no_record(db, org, run):
    before = _records(db)
    with pytest.raises(Exception, match="already exists"):
        run(accounts.create_team, "payments", "Again")
    assert _records(db) == before
    assert _verify(db).ok


@pytest.mark.parametrize(
    "tamper, reason",
    [
        ("UPDATE audit_records SET actor = 'mallory' WHERE seq = 3", "edited"),
        ("UPDATE audit_records SET details = '{\"changes\": {}}' WHERE seq = 3", "edited"),
        ("DELETE FROM audit_records WHERE seq = 3", "missing"),
    ],
)
def test_verify_names_the_first_bad_record(db, org, tamper, reason):
    with db.engine.begin() as conn:
        conn.execute(text(tamper))
    result = _verify(db)
    assert not result.ok
    assert result.first_bad_seq == 3
    assert reason in result.reason


def test_verify_finds_records_swapped_in_place(db, org):
    # Swap the content (not the ids) of records 2 and 3: each row is self-consistent
    # but the chain no longer links.
    table = AuditRecord.__table__
    content = [c for c in table.columns if c.name != "id"]
    with db.engine.begin() as conn:
        two = conn.execute(select(*content).where(table.c.seq == 2)).one()._asdict()
        three = conn.execute(select(*content).where(table.c.seq == 3)).one()._asdict()
        conn.execute(update(table).where(table.c.seq == 2).values(seq=-2))
        conn.execute(update(table).where(table.c.seq == 3).values(seq=-3))
        conn.execute(update(table).where(table.c.seq == -2).values(**three))
        conn.execute(update(table).where(table.c.seq == -3).values(**two))
    result = _verify(db)
    assert not result.ok and result.first_bad_seq == 2
    assert "out of order" in result.reason


def test_verify_finds_the_newest_records_deleted(db, org):
    last = _records(db)[-1][0]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq >= :s"), {"s": last - 1})
    result = _verify(db)
    assert not result.ok
    assert "newest records were deleted" in result.reason


def test_cli_verify_exits_0_then_1_after_tampering(db, org, monkeypatch):
    env = {"MECH_DATABASE_URL": db.url, "PATH": "/usr/bin:/bin"}
    # The code under test, where a checkout puts it ahead of the installed package.
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def verify_cli() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mechanisms", "audit", "verify"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    ok = verify_cli()
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET action = 'nothing.happened' WHERE seq = 5"))
    bad = verify_cli()
    assert bad.returncode == 1
    assert "record 5" in bad.stderr and "edited" in bad.stderr


def _append_in_bulk_between_single_records(ctx) -> None:
    audit.record(ctx, "before.bulk", "thing", "a", after={"n": 0})
    audit.record_many(
        ctx,
        [
            audit.Entry(
                "bulk.moved", "thing", i, before={"n": i}, after={"n": i + 1}, details={"i": i}
            )
            for i in range(1, 41)
        ],
    )
    audit.record(ctx, "after.bulk", "thing", "z", after={"n": -1})


def test_records_written_in_bulk_chain_like_records_written_one_by_one(db, org, run, monkeypatch):
    monkeypatch.setattr(db_module, "_ROWS_PER_INSERT", 7)  # several INSERTs on SQLite
    before = len(_records(db))
    run(_append_in_bulk_between_single_records)
    written = _records(db)[before:]
    assert [a for _, a in written] == ["before.bulk"] + ["bulk.moved"] * 40 + ["after.bulk"]
    assert [s for s, _ in written] == list(range(before + 1, before + 43))
    result = _verify(db)
    assert result.ok and result.checked == before + 42
    with db.transaction(write=False) as session:
        one = audit.browse(session, audit.AuditFilter(action="bulk.moved", object_id="7", limit=1))[
            0
        ]
    assert one.details == {"i": 7, "changes": {"n": [7, 8]}}
    assert one.actor == "system:test"


def test_tampering_with_a_bulk_written_record_is_found(db, org, run):
    run(_append_in_bulk_between_single_records)
    with db.engine.begin() as conn:
        seq = conn.execute(
            text("SELECT seq FROM audit_records WHERE action = 'bulk.moved' AND object_id = '12'")
        ).scalar_one()
        conn.execute(
            text('UPDATE audit_records SET details = \'{"i": 0, "changes": {}}\' WHERE seq = :s'),
            {"s": seq},
        )
    result = _verify(db)
    assert not result.ok and result.first_bad_seq == seq and "edited" in result.reason


def test_a_failed_bulk_write_leaves_no_record_and_the_chain_whole(db, org, run):
    before = _records(db)

    def fails_after_writing(ctx) -> None:
        audit.record_many(ctx, [audit.Entry("bulk.moved", "thing", i) for i in range(10)])
        raise RuntimeError("the job failed after writing")

    with pytest.raises(RuntimeError):
        run(fails_after_writing)
    assert _records(db) == before
    run(_append_in_bulk_between_single_records)
    assert _verify(db).ok
