"""`import mechanisms.sdk` in an application loads the flags client, the metrics and the
pure evaluation code only: none of the server (SQLAlchemy, FastAPI, the worker, any
mechanism's service code), and no OpenFeature until the provider is asked for.
Structural, not timed: the modules loaded are what is checked (benchmarks/sdk_import.py
prints the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mechanisms
from mechanisms import modules
from mechanisms.core import events, worker

SRC = str(Path(mechanisms.__file__).resolve().parents[1])

# The web framework, the database and its driver, and every part of the server an
# application has no use for.
SERVER = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "jinja2", "psycopg") + tuple(
    f"mechanisms.{part}"
    for part in ("core.db", "core.worker", "core.events", "app", "ops", "deploys", "docs")
)


def modules_after(
    code: str, *, hide: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Runs `code` in a fresh interpreter (with the packages in `hide` uninstallable) and
    returns the process and the modules it had loaded."""
    probe = (
        "import json, sys\n"
        f"for name in {list(hide)!r}: sys.modules[name] = None\n"
        f"{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if sys.modules[m] is not None)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return done, set(json.loads(lines[-1])) if done.returncode == 0 else set()


def server_modules(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER))


def test_importing_the_sdk_loads_none_of_the_server() -> None:
    done, loaded = modules_after("import mechanisms.sdk")
    assert done.returncode == 0, done.stderr
    assert {"mechanisms.sdk.client", "mechanisms.sdk.metrics", "mechanisms.flags.domain"} <= loaded
    assert server_modules(loaded) == []
    assert [m for m in loaded if m.endswith((".service", ".tables", ".deployments"))] == []
    assert [m for m in loaded if m.split(".")[0] == "openfeature"] == []


def test_the_client_works_without_openfeature_and_the_provider_names_the_extra() -> None:
    flag = {
        "key": "checkout-v2",
        "type": "boolean",
        "salt": "s",
        "version": 1,
        "config": {
            "variants": {"on": True, "off": False},
            "off_variant": "off",
            "fallthrough": {"variant": "on"},
        },
    }
    evaluate = (
        "from mechanisms.sdk import FlagsClient\n"
        f"rules = {{'environment': 'prod', 'flags': {{'checkout-v2': {flag!r}}}}}\n"
        "client = FlagsClient(mode='offline', bootstrap=rules, report_exposures=False)\n"
        "print(client.boolean('checkout-v2', False, {'targetingKey': 'u1'}))\n"
        "try:\n"
        "    from mechanisms.sdk import MechanismsProvider\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done, _ = modules_after(evaluate, hide=("openfeature",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "True",
        "MechanismsProvider needs the OpenFeature SDK: pip install 'mechanisms[openfeature]'",
    ]


def test_the_provider_loads_on_use_when_openfeature_is_installed() -> None:
    done, loaded = modules_after("from mechanisms.sdk import MechanismsProvider")
    assert done.returncode == 0, done.stderr
    assert "mechanisms.sdk.provider" in loaded and "openfeature.provider" in loaded
    assert server_modules(loaded) == []


def test_flags_register_their_job_and_subscriber_from_the_registry_not_on_import() -> None:
    done, loaded = modules_after(
        "import mechanisms.flags, mechanisms.flags.domain, mechanisms.flags.bucketing"
    )
    assert done.returncode == 0, done.stderr
    assert "mechanisms.core.worker" not in loaded
    modules.import_all()
    assert "flags.deployments" in {job.name for job in worker.registered()}
    assert "flags.rollback-on-alarm" in events.subscribers()
