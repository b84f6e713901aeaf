"""Issue #14, item 15: the audit chain survives someone who can write the database
(signed checkpoints kept outside it), token names cannot hide control or bidirectional
characters, and filtering the audit by a person finds what they did through any token.
Each test performs the attack, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from mechanisms.cli import app as cli_app
from mechanisms.core import accounts, audit, audit_anchor
from mechanisms.core.config import Settings, get_settings
from mechanisms.core.context import Ctx
from mechanisms.core.identity import ANONYMOUS, system_principal
from mechanisms.core.tables import AuditHead, AuditRecord
from mechanisms.core.worker import AuditCheckpoints, Worker
from tests.conftest import PASSWORD

API = "/api/v1"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair as the operator makes one: `mech audit keygen`."""
    private = tmp_path / "keys" / "audit.key"
    made = CliRunner().invoke(cli_app, ["audit", "keygen", str(private)])
    assert made.exit_code == 0, made.output
    assert private.stat().st_mode & 0o077 == 0, "only its owner may read the signing key"
    again = CliRunner().invoke(cli_app, ["audit", "keygen", str(private)])
    assert again.exit_code == 2, "a signing key is never overwritten"
    return private, private.with_name("audit.key.pub")


@pytest.fixture
def mech(db, monkeypatch, keys):
    """`mech …` on this test's database, with the signing key configured by file."""
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    monkeypatch.setenv("MECH_AUDIT_SIGNING_KEY_FILE", str(keys[0]))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, list(args))
    get_settings.cache_clear()


def rewrite_history(db, seq: int) -> None:
    """What someone who can write the database does: edit one record, then recompute the
    hash of every later record and the head, so that the chain verifies again."""
    with db.transaction() as session:
        rows = list(session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars())
        prev = rows[seq - 2].hash if seq > 1 else audit.GENESIS_HASH
        for row in rows[seq - 1 :]:
            if row.seq == seq:
                row.details = {**row.details, "user": "mallory"}
            # The chain's code is open source: the attacker hashes exactly as it does.
            fields = audit.stored_fields(row)
            row.prev_hash, row.hash = prev, audit.link_hash(prev, fields)
            prev = row.hash
        head = session.get(AuditHead, audit.HEAD_ID)
        head.last_hash = prev


def checkpoint(mech, path: Path) -> None:
    result = mech("audit", "checkpoint", "--out", str(path))
    assert result.exit_code == 0, result.output


def test_a_rewritten_history_passes_plain_verify_but_not_the_checkpoints(
    mech, org, db, keys, tmp_path
):
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoint(mech, checkpoints)
    rewrite_history(db, 3)

    assert mech("audit", "verify").exit_code == 0  # what the attack defeated
    anchored = mech(
        "audit", "verify", "--checkpoints", str(checkpoints), "--public-key", str(keys[1])
    )
    assert anchored.exit_code == 1
    # Where the signed hash no longer matches: the checkpoint, naming the time it was taken.
    assert "rewritten" in anchored.output and "checkpoint 1" in anchored.output


def test_a_forged_checkpoint_is_refused(mech, org, db, keys, tmp_path):
    """Rewriting the checkpoint file to match the rewritten chain needs the private key."""
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoint(mech, checkpoints)
    rewrite_history(db, 3)
    with db.transaction(write=False) as session:
        new_head = session.get(AuditHead, audit.HEAD_ID).last_hash
    line = json.loads(checkpoints.read_text())
    checkpoints.write_text(json.dumps({**line, "hash": new_head}) + "\n")
    result = mech(
        "audit", "verify", "--checkpoints", str(checkpoints), "--public-key", str(keys[1])
    )
    assert result.exit_code == 1
    assert "signature of checkpoint 1" in result.output


def test_deleting_the_newest_records_is_caught_by_a_checkpoint(mech, org, db, keys, tmp_path):
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoint(mech, checkpoints)
    with db.transaction() as session:
        last = session.get(AuditHead, audit.HEAD_ID)
        session.execute(text("DELETE FROM audit_records WHERE seq > :s"), {"s": last.last_seq - 2})
        kept = session.execute(
            select(AuditRecord).where(AuditRecord.seq == last.last_seq - 2)
        ).scalar_one()
        last.last_seq, last.last_hash = kept.seq, kept.hash
    assert mech("audit", "verify").exit_code == 0
    result = mech(
        "audit", "verify", "--checkpoints", str(checkpoints), "--public-key", str(keys[1])
    )
    assert result.exit_code == 1 and "records were deleted" in result.output


def test_an_untouched_chain_verifies_against_its_checkpoints(mech, org, run, keys, tmp_path):
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoint(mech, checkpoints)
    run(accounts.create_team, "later", "Later")  # records after a checkpoint are fine
    checkpoint(mech, checkpoints)
    # The verifier needs only the public key; the signing key's owner may omit it.
    for args in (["--public-key", str(keys[1])], []):
        result = mech("audit", "verify", "--checkpoints", str(checkpoints), *args)
        assert result.exit_code == 0, result.output
    assert len(checkpoints.read_text().splitlines()) == 2


def test_the_worker_exports_checkpoints_on_schedule(db, clock, org, keys, tmp_path):
    checkpoints = tmp_path / "exported" / "checkpoints.jsonl"
    settings = Settings(
        audit_signing_key_file=str(keys[0]),
        audit_checkpoint_file=str(checkpoints),
        audit_checkpoint_minutes=60,
    )
    worker = Worker(db, clock=clock, settings=settings, jobs=[AuditCheckpoints()])
    try:
        worker.tick()
        worker.tick()
        assert len(checkpoints.read_text().splitlines()) == 1
        clock.advance(minutes=60)
        worker.tick()
    finally:
        worker.close()
    exported = audit_anchor.read(checkpoints)
    assert len(exported) == 2
    public = audit_anchor.load_public_key(keys[1])
    with db.transaction(write=False) as session:
        assert audit_anchor.verify(session, exported, public).ok


@pytest.mark.parametrize(
    "name",
    ["deploy\u202egnp.exe", "ci\u2066admin\u2069", "two\nlines", "red\x1b[31malert", "zw\u200bsp"],
)
def test_a_token_name_cannot_hide_control_or_bidirectional_characters(client, org, name):
    response = client.post(f"{API}/tokens", json={"name": name}, headers=org.header("eve"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == {"field": "name"}


def test_a_plain_token_name_is_still_fine(client, org):
    response = client.post(f"{API}/tokens", json={"name": "ci runner"}, headers=org.header("eve"))
    assert response.status_code == 201, response.text


def test_filtering_by_a_person_finds_what_they_did_through_every_token(client, org, db, clock):
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        for username in ("lena", "lenab"):
            accounts.create_user(ctx, username, password=PASSWORD)
            accounts.set_membership(ctx, "acme", username, "admin")
        lena_ci = accounts.create_token(ctx, "lena", "ci", "admin")[1]
        lena_laptop = accounts.create_token(ctx, "lena", "laptop_1", "admin")[1]
        lenab = accounts.create_token(ctx, "lenab", "ci", "admin")[1]
    with db.transaction() as session:
        # Her web session's records carry her plain name.
        accounts.login(Ctx(session, ANONYMOUS, clock.now()), "lena", PASSWORD, timedelta(hours=1))
    for slug, token in (("by-ci", lena_ci), ("by-laptop", lena_laptop), ("by-lenab", lenab)):
        created = client.post(
            f"{API}/teams",
            json={"slug": slug, "parent": "acme"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
    found = client.get(f"{API}/audit", params={"actor": "lena"}, headers=org.header("ada"))
    assert {(r["actor"], r["action"]) for r in found.json()["records"]} == {
        ("lena", "user.login"),
        ("lena[token:ci]", "team.created"),
        ("lena[token:laptop_1]", "team.created"),
    }
    # The exact form still finds one token's records only; a LIKE wildcard matches nothing.
    one = client.get(f"{API}/audit", params={"actor": "lena[token:ci]"}, headers=org.header("ada"))
    assert {r["actor"] for r in one.json()["records"]} == {"lena[token:ci]"}
    wildcard = client.get(f"{API}/audit", params={"actor": "len_"}, headers=org.header("ada"))
    assert wildcard.json()["records"] == []
