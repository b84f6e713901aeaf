"""`mech` loads a sub-command only when it runs: `mech --help` imports no mechanism and
`mech doc check` (a pre-commit hook, a CI step) imports no web framework, no database
and no other mechanism. Structural, not timed: the modules loaded are what is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from mechanisms import cli, modules
from mechanisms.core import cli as core_cli

HEAVY = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "httpx",
    "holidays",
    "jinja2",
    "mechanisms.core.cli",
    "mechanisms.core.db",
    "mechanisms.flags",
    "mechanisms.ops",
    "mechanisms.deploys",
)
SRC = str(Path(cli.__file__).resolve().parents[1])

# Runs `mech` in a fresh interpreter, then reports its exit code and the modules it loaded.
PROBE = """
import json, sys
from mechanisms.cli import app
try:
    app(sys.argv[2:], prog_name="mech")
except SystemExit as exc:
    code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def loaded(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    report = tmp_path / "modules.json"
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "MECH_PLUGINS": "", **(env or {})}
    subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env=env,
        cwd=tmp_path,
        check=False,
        capture_output=True,
    )
    found = json.loads(report.read_text())
    return found["code"], set(found["modules"])


def heavy(modules_loaded: set[str]) -> list[str]:
    return sorted(m for m in modules_loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_doc_check_imports_no_database_web_or_other_mechanism(tmp_path: Path) -> None:
    doc = tmp_path / "short.md"
    doc.write_text("# A title\n\nThe team ships the change on Monday.\n", encoding="utf-8")
    code, found = loaded(tmp_path, "doc", "check", str(doc), "--json")
    assert code in (0, 1)  # the file passed or failed its checks: it was checked
    assert "mechanisms.docs.check" in found
    assert heavy(found) == []


def test_help_imports_no_mechanism(tmp_path: Path) -> None:
    code, found = loaded(tmp_path, "--help")
    assert code == 0
    assert heavy(found) == []
    assert not [m for m in found if m.startswith("mechanisms.docs")]


def test_deploy_gate_imports_no_web_framework_or_unrelated_mechanism(tmp_path: Path) -> None:
    code, found = loaded(tmp_path, "deploy", "gate", "--help")
    assert code == 0
    assert "mechanisms.deploys.cli" in found
    unrelated = ("fastapi", "starlette", "jinja2", "mechanisms.flags", "mechanisms.docs")
    assert [m for m in found if m.split(".")[0] in unrelated or m.startswith(unrelated)] == []


def test_the_help_lists_what_the_commands_are() -> None:
    """The names and lines `mech --help` shows without importing match the real commands."""
    core = typer.Typer()
    core_cli.register(core)
    real = typer.main.get_group(core).commands
    assert {name: c.help.splitlines()[0] for name, c in real.items()} == cli.CORE_COMMANDS
    group = typer.main.get_group(cli.app)
    for m in modules.importable():
        command = group.get_command(None, m.command or m.name)  # type: ignore[arg-type]
        assert command is not None and command.commands, m.name
