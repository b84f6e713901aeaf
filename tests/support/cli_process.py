"""`mech` run as a CI job runs it: a fresh process given a server (MECH_URL) and a token,
and a database address it must never open; and the real app served for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mechanisms.app import attach
from mechanisms.core.clock import SystemClock
from mechanisms.core.db import Database
from tests.support.server import serving

SRC = str(Path(__file__).resolve().parents[2] / "src")


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def said(self) -> str:
        """Everything printed, on one line (the console wraps long lines)."""
        return " ".join((self.stdout + self.stderr).split())


Mech = Callable[..., Ran]


@contextmanager
def serving_api(app: FastAPI, db: Database) -> Iterator[str]:
    """The real app on a loopback port, on this database and the real clock (as `mech` on
    the server itself reads it)."""
    attach(app, db, SystemClock())
    with serving(app) as url:
        yield url


def mech_in_ci(url: str, token: str | None, database: Path) -> Mech:
    """mech(*args, stdin=None) in a fresh process with MECH_URL, MECH_TOKEN (unless None)
    and a MECH_DATABASE_URL naming ``database``, a SQLite file that must never appear."""

    def mech(*args: str, stdin: str | None = None) -> Ran:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": SRC,
            "MECH_URL": url,
            "MECH_DATABASE_URL": f"sqlite:///{database}",
            "MECH_PLUGINS": "",
            "COLUMNS": "200",
        }
        if token is not None:
            env["MECH_TOKEN"] = token
        done = subprocess.run(
            [sys.executable, "-m", "mechanisms", *args],
            env=env,
            cwd=database.parent,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return mech
