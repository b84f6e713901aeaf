"""The deploys gate for a large org through the real service, as a user calls it:
``pipelines.gate(ctx, service, stage, version, at)`` in its own read transaction, which
loads the snapshot (pipeline, version, the windows on the scope's chain, deployments, test
results, approvals, break-glass grants) from the database on every call; nothing cached
but each rule's compiled form (decision 0013/0014).

The org is the one ``deploys_gate.py`` builds (1,000 services in teams of 20, 5,000 block
windows over org, team, service and stage scopes, recurring ones included), created here
through the services in a fresh database: ``accounts`` for the org, teams and a viewer,
``ops.alarms.create_service`` for the services, ``deploys.pipelines`` for a pipeline
beta → gamma → prod and one version each, ``deploys.windows.create_window`` for the
windows (a few hundred objects per transaction). Then the same random (service, stage,
instant) questions are asked three ways, side by side in one run:

- domain: ``Calendar.gate_state`` on a calendar built once (``deploys_gate.py``'s figure);
- service, window only: ``deploys.windows.gate_state`` (the window part of the snapshot);
- service, the gate: ``deploys.pipelines.gate``, the whole decision.

SQLite always (a file in a temporary directory); PostgreSQL too with ``--pg URL`` or
``MECH_BENCH_PG_URL`` (a database of its own is created on that server and dropped after).

    .venv/bin/python benchmarks/deploys_gate_service.py              # a table, ~3 min
    .venv/bin/python benchmarks/deploys_gate_service.py --json       # JSON on stdout
    .venv/bin/python benchmarks/deploys_gate_service.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from deploys_gate import (  # noqa: E402
    ORG,
    STAGES,
    TARGET_MS,
    build_org,
    queries,
)
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from mechanisms.core import accounts, migrate  # noqa: E402
from mechanisms.core.context import Ctx  # noqa: E402
from mechanisms.core.db import Database  # noqa: E402
from mechanisms.core.identity import Principal, Role, system_principal  # noqa: E402
from mechanisms.deploys import calendar as cal  # noqa: E402
from mechanisms.deploys import pipelines, windows  # noqa: E402
from mechanisms.deploys.calendar import BlockWindow, Calendar, Scope  # noqa: E402
from mechanisms.ops import alarms  # noqa: E402

PG_ENV = "MECH_BENCH_PG_URL"
SETUP_NOW = datetime(2025, 12, 1, 9, tzinfo=UTC)
VIEWER = "vic"
SCOPE_KINDS = {1: "org", 2: "team", 3: "service", 4: "stage"}
Ask = tuple[Scope, datetime]


# --- databases ------------------------------------------------------------------------


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="mech-gate-bench-") as folder:
        db = Database(f"sqlite:///{Path(folder) / 'mech.db'}")
        try:
            yield db
        finally:
            db.dispose()


@contextmanager
def pg_database(admin_url: str) -> Iterator[Database]:
    """A database of its own on the server, dropped afterwards (as tests/conftest.py does)."""
    name = f"mech_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_version(db: Database) -> str:
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            return conn.execute(text("SHOW server_version")).scalar_one()
        return conn.execute(text("SELECT sqlite_version()")).scalar_one()


# --- the org, through the services ----------------------------------------------------


def in_batches(db: Database, items: list[Any], size: int, act: Callable[[Ctx, Any], Any]) -> None:
    """Each batch in one write transaction, as one request or CLI import would be."""
    for start in range(0, len(items), size):
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("bench"), SETUP_NOW)
            for item in items[start : start + size]:
                act(ctx, item)


def seed(db: Database, found: list[BlockWindow], scopes: list[Scope], batch: int) -> None:
    teams = sorted({s.team for s in scopes})
    services = sorted({(s.team, s.service) for s in scopes})
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("bench"), SETUP_NOW)
        accounts.create_team(ctx, ORG, "Acme")
        for team in teams:
            accounts.create_team(ctx, team, team, parent=ORG)
        accounts.create_user(ctx, VIEWER)
        accounts.set_membership(ctx, ORG, VIEWER, "viewer")

    def add_service(ctx: Ctx, item: tuple[str, str]) -> None:
        team, service = item
        alarms.create_service(ctx, service, service, team)
        pipelines.set_pipeline(ctx, service, [{"name": stage} for stage in STAGES])
        pipelines.register_version(ctx, service, f"{service}:1.0.0", f"sha256:{service}-1")

    def add_window(ctx: Ctx, window: BlockWindow) -> None:
        scope = window.scope
        kind = SCOPE_KINDS[len(scope.key)]
        target = {
            "org": scope.org,
            "team": scope.team,
            "service": scope.service,
            "stage": f"{scope.service}/{scope.stage}",
        }[kind]
        windows.create_window(
            ctx, kind, target, windows.rule_to_json(window.rule), window.reason, window.id
        )

    in_batches(db, services, batch, add_service)
    in_batches(db, found, batch, add_window)


def viewer(db: Database) -> Principal:
    """vic, an org viewer, with a read-only token: the API's principal for a gate question."""
    with db.transaction(write=False) as session:
        user = accounts.find_user(session, VIEWER)
        assert user is not None
        return Principal(
            user_id=user.id,
            username=user.username,
            via="token",
            token_name="read",
            scope=Role.VIEWER,
        )


# --- the timed calls ------------------------------------------------------------------


def timed(call: Callable[[Scope, datetime], str], asks: list[Ask]) -> tuple[list, list, Counter]:
    """Wall-clock and this thread's CPU milliseconds per call (on a shared machine the
    wall-clock tail is mostly other processes' turns, and for PostgreSQL the server's work)."""
    times, cpu, answers = [], [], Counter()
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for scope, at in asks:
        started, cpu_started = clock(), cpu_clock()
        answer = call(scope, at)
        cpu.append((cpu_clock() - cpu_started) / 1e6)
        times.append((clock() - started) / 1e6)
        answers[answer] += 1
    return times, cpu, answers


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def at(q: float) -> float:
        return ordered[int(q * (len(ordered) - 1))]

    return {
        "calls": len(times),
        "median_ms": statistics.median(ordered),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def read_call(
    db: Database, principal: Principal, ask: Callable[[Ctx, Scope, datetime], str]
) -> Callable[[Scope, datetime], str]:
    """One read transaction per call, as the API opens for a GET."""

    def call(scope: Scope, at: datetime) -> str:
        with db.transaction(write=False) as session:
            return ask(Ctx(session, principal, at), scope, at)

    return call


def ask_gate(ctx: Ctx, scope: Scope, at: datetime) -> str:
    decision = pipelines.gate(ctx, scope.service, scope.stage, f"sha256:{scope.service}-1", at)
    return "allowed" if decision.allowed else "blocked"


def ask_window(ctx: Ctx, scope: Scope, at: datetime) -> str:
    return windows.gate_state(ctx, scope.service, scope.stage, at).status.value


def run_backend(
    db: Database, found: list[BlockWindow], scopes: list[Scope], args: argparse.Namespace
) -> dict[str, Any]:
    say = args.say
    migrate.upgrade(db)
    started = time.perf_counter()
    seed(db, found, scopes, args.batch)
    setup_s = time.perf_counter() - started
    say(f"{db.dialect}: org created through the services in {setup_s:.1f} s")
    principal = viewer(db)
    cal.compile_rule.cache_clear()
    gate = read_call(db, principal, ask_gate)
    window = read_call(db, principal, ask_window)
    timed(gate, queries(scopes, args.warmup, args.seed + 1))  # compile each rule once
    asks = queries(scopes, args.calls, args.seed + 2)
    gate_times, gate_cpu, decisions = timed(gate, asks)
    say(f"{db.dialect}: {args.calls} gate calls")
    window_times, window_cpu, states = timed(window, asks)
    say(f"{db.dialect}: {args.calls} window-state calls")
    return {
        "backend": db.dialect,
        "server_version": server_version(db),
        "setup_seconds": setup_s,
        "gate": summary(gate_times),
        "gate_cpu": summary(gate_cpu),
        "window": summary(window_times),
        "window_cpu": summary(window_cpu),
        "decisions": dict(decisions),
        "window_states": dict(states),
    }


def run_domain(found: list[BlockWindow], scopes: list[Scope], args: argparse.Namespace) -> dict:
    calendar = Calendar(found)
    timed(
        lambda s, at: calendar.gate_state(s, at).status.value,
        queries(scopes, args.warmup, args.seed + 1),
    )
    times, cpu, states = timed(
        lambda s, at: calendar.gate_state(s, at).status.value,
        queries(scopes, args.calls, args.seed + 2),
    )
    return {"steady": summary(times), "steady_cpu": summary(cpu), "states": dict(states)}


# --- output ---------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    domain_median = result["domain"]["steady"]["median_ms"]
    print("\n| backend | path | calls | median ms | p95 ms | p99 ms | × domain | vs 5 ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")

    def row(backend: str, path: str, s: dict[str, float]) -> None:
        med = s["median_ms"]
        verdict = f"met, {TARGET_MS / med:.1f}× under" if med < TARGET_MS else "NOT met"
        print(
            f"| {backend} | {path} | {s['calls']:,} | {med:.3f} | {s['p95_ms']:.3f} | "
            f"{s['p99_ms']:.3f} | {med / domain_median:.1f} | {verdict} |"
        )

    row("-", "domain `Calendar.gate_state`", result["domain"]["steady"])
    for run in result["backends"]:
        name = f"{run['backend']} {run['server_version']}"
        row(name, "`windows.gate_state`", run["window"])
        row(name, "**`pipelines.gate`**", run["gate"])
        row(name, "`pipelines.gate`, CPU time", run["gate_cpu"])
    for run in result["backends"]:
        print(
            f"\n{run['backend']}: setup {run['setup_seconds']:.0f} s; decisions {run['decisions']}; "
            f"window states {run['window_states']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--batch", type=int, default=250, help="objects per setup transaction")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", default=os.environ.get(PG_ENV), help=f"admin URL (or ${PG_ENV})")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--json", nargs="?", const="-", help="write JSON to this path ('-' or nothing: stdout)"
    )
    args = parser.parse_args()
    quiet = args.json == "-"

    def say(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    args.say = say
    found, scopes = build_org(args.services, args.windows, args.seed)
    say(f"org: {args.services} services, {len(scopes)} scopes, {len(found)} windows")
    result: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "org": {
            "services": args.services,
            "scopes": len(scopes),
            "windows": len(found),
            "kinds": dict(Counter(w.kind.value for w in found)),
        },
        "target_median_ms": TARGET_MS,
        "domain": run_domain(found, scopes, args),
        "backends": [],
    }
    say(f"domain: {args.calls} calls")
    if not args.no_sqlite:
        with sqlite_database() as db:
            result["backends"].append(run_backend(db, found, scopes, args))
    if args.pg:
        with pg_database(args.pg) as db:
            result["backends"].append(run_backend(db, found, scopes, args))
    result["machine"]["load_average_at_end"] = os.getloadavg()
    domain_median = result["domain"]["steady"]["median_ms"]
    for run in result["backends"]:
        median = run["gate"]["median_ms"]
        run["gate_median_vs_domain"] = median / domain_median
        run["gate_median_vs_target"] = median / TARGET_MS
        run["target_met"] = median < TARGET_MS
    if not quiet:
        print_table(result)
        print(
            f"\nload average: start {result['machine']['load_average_at_start']}, end {result['machine']['load_average_at_end']}"
        )
    if args.json:
        text_out = json.dumps(result, indent=2)
        if args.json == "-":
            print(text_out)
        else:
            Path(args.json).write_text(text_out)


if __name__ == "__main__":
    main()
