"""The wheel a user installs holds every file of the package, data folders included
(templates, static files and their vendored libraries, the docs check's data, the migration
template), and building it prints no setuptools "Package would be ignored" warnings."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mechanisms"
DATA_FOLDERS = [
    "web/templates",
    "web/static",
    "web/static/vendor",
    "docs/data",
    "flags/templates",
    "ops/templates",
    "deploys/templates",
    "docs/templates",
]


def source_files() -> set[str]:
    return {
        f"mechanisms/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.mark.slow
def test_the_wheel_holds_every_file_and_building_it_warns_of_nothing(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build leaves build/ and egg-info behind in the checkout.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "would be ignored" not in built.stdout + built.stderr

    (wheel,) = tmp_path.glob("mechanisms-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = source_files()
    for folder in DATA_FOLDERS:
        assert any(f.startswith(f"mechanisms/{folder}/") for f in expected), folder
    assert "mechanisms/migrations/script.py.mako" in expected
    assert sorted(expected - shipped) == []
