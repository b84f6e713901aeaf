"""`mech doc …`: new, sync (idempotent), comment, answer, review, decide with exit 1 and
every reason, supersede, search and load, all with --json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from mechanisms.core.config import get_settings


@pytest.fixture
def mech(db, org, monkeypatch):
    monkeypatch.setenv("MECH_DATABASE_URL", db.url)
    monkeypatch.delenv("MECH_TOKEN", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def call(*args, who=None):
        extra = ["--token", org.tokens[who]] if who else []
        return runner.invoke(app, ["doc", *args, *extra])

    yield call
    get_settings.cache_clear()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_review_flow_from_the_command_line(mech, tmp_path):
    (tmp_path / "adr").mkdir()
    (tmp_path / "adr" / "0001-cache.md").write_text(
        "---\nid: adr-1\nreviewers: [leo]\ntags: [checkout]\n---\n# Cache checkout\n\n"
        "## Why now\n\nCheckout is slow.\n"
    )
    first = _json(mech("sync", str(tmp_path), "--json", who="eve"))
    assert first["created"] == ["cache-checkout"]
    assert _json(mech("sync", str(tmp_path), "--json", who="eve"))["unchanged"] == [
        "cache-checkout"
    ]
    assert _json(mech("submit", "cache-checkout", "--json", who="eve"))["status"] == "in_review"
    q = _json(
        mech("comment", "cache-checkout", "How slow?", "--paragraph", "3", "--json", who="leo")
    )
    blocked = mech("decide", "cache-checkout", "accepted", "--door", "two_way", "--json", who="eve")
    assert blocked.exit_code == 1
    assert [r["code"] for r in json.loads(blocked.output)["reasons"]] == ["unanswered_question"]
    _json(mech("answer", str(q["id"]), "p99 of 2 s", "--resolve", "--json", who="eve"))
    decided = _json(
        mech("decide", "cache-checkout", "accepted", "--door", "two_way", "--json", who="eve")
    )
    assert decided["doc"]["status"] == "accepted"
    successor = _json(mech("new", "Cache everything", "--tag", "checkout", "--json", who="eve"))
    assert (
        _json(mech("supersede", "cache-checkout", successor["slug"], "--json", who="eve"))[
            "superseded_by"
        ]
        == "cache-everything"
    )
    found = _json(mech("search", "checkout", "--json"))
    assert {d["slug"] for d in found} == {"cache-checkout", "cache-everything"}
    loads = _json(mech("load", "leo", "--json"))
    assert loads[0]["band"] == "below"


def test_usage_errors_exit_2_without_a_traceback(mech, tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"# Caf\xe9\n")
    result = mech("upload", str(bad), who="eve")
    assert (
        result.exit_code == 2 and "not UTF-8" in result.output and "Traceback" not in result.output
    )
    assert mech("submit", "nothing-here").exit_code == 2
    assert mech("sync", str(tmp_path / "missing")).exit_code == 2
    assert mech("load", "--day", "yesterday").exit_code == 2
