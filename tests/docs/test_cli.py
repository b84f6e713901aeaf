"""`mech doc check` and `mech doc rules`: output for people and tools, exit codes
0 passed, 1 a threshold failed, 2 a usage or input error; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from mechanisms.cli import app
from tests.docs.test_structure import GOOD

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())
runner = CliRunner()


def mech(*args: str, input: bytes | str | None = None):  # noqa: ANN201
    result = runner.invoke(app, ["doc", *args], input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of its own, so no configuration above the tests applies."""
    (tmp_path / ".mechdoc.toml").write_text('template = "decision"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_good_document_passes(project: Path) -> None:
    (project / "good.md").write_text(GOOD)
    result = mech("check", "good.md")
    assert result.exit_code == 0, result.output
    assert "good.md" in result.output and "passed" in result.output
    assert "Flesch Reading Ease" in result.output


def test_findings_show_line_column_and_why(project: Path) -> None:
    (project / "bad.md").write_text("# T\n\nThe deploy was blocked by many people.\n")
    result = mech("check", "bad.md", "--template", "none")
    assert result.exit_code == 1, "every sentence is passive: over the 20 % limit"
    assert "max_passive_percent" in result.output
    assert (
        "3:12" in result.output and "passive" in result.output and "“was blocked”" in result.output
    )
    assert "hides who acts" in result.output


def test_a_failed_threshold_exits_1(project: Path) -> None:
    (project / "short.md").write_text("# Plan\n\nWe ship it.\n")
    result = mech("check", "short.md")
    assert result.exit_code == 1
    assert "sections" in result.output and "Missing section" in result.output


def test_several_files_end_with_a_summary(project: Path) -> None:
    (project / "a.md").write_text(GOOD)
    (project / "b.md").write_text("# Plan\n\nIt is very good.\n")
    result = mech("check", "a.md", "b.md")
    assert result.exit_code == 1
    assert "2 checked: 1 passed, 1 failed" in result.output


def test_json_output_for_several_files(project: Path) -> None:
    (project / "a.md").write_text(GOOD)
    (project / "b.md").write_text("# Plan\n\nIt is very good.\n")
    result = mech("check", "a.md", "b.md", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [f["path"] for f in data["files"]] == ["a.md", "b.md"]
    assert data["files"][0]["passed"] and not data["files"][1]["passed"]
    weasel = next(f for f in data["files"][1]["findings"] if f["rule"] == "weasel")
    assert (weasel["line"], weasel["column"], weasel["text"]) == (3, 7, "very")
    assert data["files"][0]["stats"]["reading_minutes"] >= 0


def test_sarif_output_is_valid_sarif_2_1_0(project: Path) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "b.md").write_text("# Plan\n\nIt is very good and was written.\n")
    result = mech("check", "docs/b.md", "--format", "sarif")
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, SCHEMA)
    run = log["runs"][0]
    located = [r for r in run["results"] if r["ruleId"] == "weasel"]
    region = located[0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 7, "endLine": 3, "endColumn": 11}
    assert located[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "docs/b.md"
    assert any(r["ruleId"] == "threshold" for r in run["results"])
    assert run["columnKind"] == "unicodeCodePoints"


def test_github_annotations(project: Path) -> None:
    (project / "a, b.md").write_text("# Plan\n\nIt is very good: 100% so.\n")
    result = mech("check", "a, b.md", "--format", "github", "--template", "none")
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "::warning file=a%2C b.md,line=3,col=7,endLine=3,endColumn=11,title=weasel::"
        "“very”: Weasel words sound precise and commit to nothing a reader can check. "
        "→ Replace it with a number or a fact, or delete it."
    )


def test_standard_input(project: Path) -> None:
    result = mech("check", "-", "--template", "none", "--json", input="It is very good.\n")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["files"][0]["path"] == "<stdin>"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("Caf\u00e9 menu".encode("latin-1"), "not UTF-8"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    project: Path, content: bytes, message: str
) -> None:
    (project / "bad.md").write_bytes(content)
    result = mech("check", "bad.md")
    assert result.exit_code == 2
    assert message in result.output


def test_missing_files_and_folders_exit_2_but_others_are_still_checked(project: Path) -> None:
    (project / "good.md").write_text(GOOD)
    result = mech("check", "nope.md", "good.md", str(project), "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert [f["path"] for f in data["files"]] == ["good.md"]
    assert any("no such file" in e for e in data["errors"])
    assert any("is a folder" in e for e in data["errors"])


def test_a_file_over_the_limit_is_refused_before_reading(project: Path) -> None:
    from mechanisms.docs.source import MAX_BYTES

    with (project / "huge.md").open("wb") as f:
        f.truncate(MAX_BYTES + 1)
    result = mech("check", "huge.md")
    assert result.exit_code == 2
    assert "limit" in result.output


def test_unknown_rules_in_the_configuration_exit_2(project: Path) -> None:
    (project / ".mechdoc.toml").write_text('disable = ["pasive"]\n')
    (project / "a.md").write_text(GOOD)
    result = mech("check", "a.md")
    assert result.exit_code == 2
    assert "unknown rule 'pasive'" in " ".join(result.output.split())


def test_usage_errors_exit_2(project: Path) -> None:
    (project / "a.md").write_text(GOOD)
    assert mech("check", "a.md", "--disable", "nope").exit_code == 2
    assert mech("check", "a.md", "--template", "rfc").exit_code == 2
    assert mech("check", "a.md", "--format", "xml").exit_code == 2
    assert mech("check", "a.md", "--config", "missing.toml").exit_code == 2
    assert mech("check").exit_code == 2
    (project / "broken.toml").write_text("template = \n")
    result = mech("check", "a.md", "--config", "broken.toml")
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_disable_on_the_command_line(project: Path) -> None:
    (project / "a.md").write_text("It is very good.\n")
    result = mech("check", "a.md", "--template", "none", "--disable", "weasel", "--json")
    assert json.loads(result.stdout)["files"][0]["findings"] == []


def test_rules_lists_every_rule() -> None:
    result = mech("rules", "--json")
    ids = {r["id"] for r in json.loads(result.stdout)}
    assert {
        "passive",
        "weasel",
        "hedge",
        "adverb",
        "there-is",
        "cliche",
        "long-sentence",
        "unquantified",
    } <= ids
    assert "missing-section" in ids


def test_the_installed_command_runs_without_a_database(project: Path) -> None:
    (project / "a.md").write_text(GOOD)
    src = Path(__file__).resolve().parents[2] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "mechanisms", "doc", "check", "a.md", "--json"],
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(src),
            "PATH": "/usr/bin:/bin",
            "MECH_DATABASE_URL": "sqlite:////nonexistent/x.db",
        },
        cwd=project,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True
