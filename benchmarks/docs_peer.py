"""write-good (npm), the docs benchmarks' peer, run through node from Python.

The version is pinned in benchmarks/package.json and package-lock.json; when
benchmarks/node_modules is missing, ``npm ci --prefix benchmarks`` installs exactly that.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "writegood.js"


def ensure_installed() -> str:
    """Install the pinned write-good if needed; its version."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("node and npm are needed for the peer: apt-get install -y nodejs npm")
    package = HERE / "node_modules" / "write-good" / "package.json"
    if not package.exists():
        subprocess.run(["npm", "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"], check=True)
    return json.loads(package.read_text())["version"]


def node_version() -> str:
    return subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def spans(texts: list[str], check: str) -> list[list[tuple[int, int]]]:
    """The [start, end) spans write-good flags in each text, with only ``check`` on."""
    done = subprocess.run(
        ["node", str(SCRIPT), "spans", check],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    return [[(a, b) for a, b in found] for found in json.loads(done.stdout)]


def time(path: Path, check: str, rounds: int) -> dict:
    """Seconds per round of write-good over the file at ``path``, timed inside node."""
    done = subprocess.run(
        ["node", str(SCRIPT), "time", check, str(path), str(rounds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def weasel_words_pattern() -> re.Pattern[str]:
    """write-good's weasel words (the weasel-words package's list), as one pattern."""
    source = (HERE / "node_modules" / "weasel-words" / "weasel.js").read_text()
    listing = source[source.index("[") : source.index("]")]
    words = re.findall(r"'([^']+)'", listing)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
