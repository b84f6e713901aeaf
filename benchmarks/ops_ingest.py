"""Ingest into the built-in metrics store, side by side with a plain bulk insert of the
same rows into the same database: samples per second and our ratio to it, on SQLite and
PostgreSQL; and the accuracy of the store's percentiles against numpy on the same data.

The data: ``--samples`` samples (200,000, the most one request may carry) spread over
``--minutes`` minutes (10) across ``--series`` series (50: 5 services x 10 routes of
``api_latency_ms``), in time order, each series a lognormal latency (a median of 40-160
ms, sigma 0.6-1.2, so a long right tail), values rounded to the microsecond and
timestamps to the millisecond, as a client would send them.

What is timed is the whole path a client pays for, on one core (this process; a
PostgreSQL server does its share in its own process):

- ours, JSON: the request body's bytes -> the API's ``decode_samples`` (``json.loads`` with
  the collector paused) -> ``alarms.ingest_json``
  (the permission check, ``metrics.parse_json``, ``metrics.ingest``: every sample checked,
  per-minute rollups with a DDSketch each) -> commit;
- ours, Prometheus: the text body's bytes -> UTF-8 decode -> ``alarms.ingest_prometheus``
  (``metrics.parse_prometheus`` + ``metrics.ingest``) -> commit;
- plain insert: the same rows as ``(series_id, ts, value)`` tuples, built before timing,
  into a table of three columns (integer, double, double; no index), one ``executemany``
  through SQLAlchemy -> commit. The floor: no parsing, no checks, no rollups;
- plain insert from JSON: the same body's bytes -> ``json.loads`` -> a tuple per sample
  (series id looked up by its labels) -> the same ``executemany`` -> commit. What a store
  that keeps raw samples would pay at least.

Each database is new (SQLite: a file in a temporary directory; PostgreSQL: a database
created for the run and dropped after it), migrated with ``migrate.upgrade`` and seeded
with a team and a service. Before each timed run the tables are emptied (not timed), so
every run of ours also creates its 50 series. Targets run in rounds (each once per
round), best of ``--repeat``; the GC stays on (a server runs with it). Every run is
checked: all samples accepted, the rollups' counts add up to the samples, the plain table
holds every row.

    .venv/bin/python benchmarks/ops_ingest.py                  # a table, ~1-2 min
    .venv/bin/python benchmarks/ops_ingest.py --json           # JSON on stdout
    .venv/bin/python benchmarks/ops_ingest.py --json out.json --backends sqlite --repeat 2
    .venv/bin/python benchmarks/ops_ingest.py --batch 10000    # 20 requests of 10,000
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

TARGET_RATE = 200_000
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# A fixed instant: the store takes the time as a parameter, so no clock is read.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
METRIC = "api_latency_ms"
SERVICES = ["checkout", "cart", "search", "payments", "accounts"]
ROUTES = [
    "/",
    "/items",
    "/items/{id}",
    "/cart",
    "/cart/items",
    "/checkout",
    "/login",
    "/search",
    "/orders",
    "/orders/{id}",
]
PLAIN_TABLE = "bench_plain_samples"
QUANTILES = (50, 90, 99, 99.9)


# --- data -----------------------------------------------------------------------------


@dataclass
class Data:
    labels: list[dict[str, str]]
    rows: list[tuple[int, float, float]]  # (series index, epoch seconds, value), in time order
    start: datetime
    end: datetime

    def bodies(self, batch: int) -> list[tuple[bytes, bytes, list[tuple[int, float, float]]]]:
        """Per request: the JSON body, the Prometheus text body, and its rows as
        (series id, epoch seconds, value) tuples."""
        out = []
        for first in range(0, len(self.rows), batch):
            rows = self.rows[first : first + batch]
            body = {
                "samples": [
                    {"name": METRIC, "labels": self.labels[s], "value": v, "timestamp": ts}
                    for s, ts, v in rows
                ]
            }
            lines = [f"# TYPE {METRIC} gauge"]
            keys = [",".join(f'{k}="{v}"' for k, v in labels.items()) for labels in self.labels]
            lines += [f"{METRIC}{{{keys[s]}}} {v!r} {round(ts * 1000)}" for s, ts, v in rows]
            plain = [(series + 1, ts, value) for series, ts, value in rows]
            out.append((json.dumps(body).encode(), ("\n".join(lines) + "\n").encode(), plain))
        return out


def make_data(samples: int, series: int, minutes: int, seed: int = 7) -> Data:
    rng = random.Random(seed)
    labels = [
        {
            "service": SERVICES[i % len(SERVICES)],
            "route": ROUTES[(i // len(SERVICES)) % len(ROUTES)],
        }
        for i in range(series)
    ]
    for i in range(len(SERVICES) * len(ROUTES), series):  # beyond 50: more instances
        labels[i]["instance"] = f"i-{i // (len(SERVICES) * len(ROUTES))}"
    shape = [(math.log(rng.uniform(40, 160)), rng.uniform(0.6, 1.2)) for _ in range(series)]
    end = NOW - timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    span_ms = minutes * 60_000
    per_series = -(-samples // series)
    if per_series > span_ms:
        raise SystemExit("more samples per series than milliseconds in the window")
    rows = []
    t0 = start.timestamp()
    for s in range(series):
        # distinct milliseconds per series: no two values of one series at one instant
        for ms in sorted(rng.sample(range(span_ms), per_series)):
            mu, sigma = shape[s]
            rows.append((s, t0 + ms / 1000, round(rng.lognormvariate(mu, sigma), 3)))
    rows.sort(key=lambda r: (r[1], r[0]))
    return Data(labels, rows[:samples], start, end)


# --- databases ------------------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, pg_url: str) -> Iterator[Any]:
    """A new, migrated database with a team and a service; removed afterwards."""
    from mechanisms.core import accounts, migrate
    from mechanisms.core.context import Ctx
    from mechanisms.core.db import Database
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    workdir = None
    if backend == "sqlite":
        workdir = tempfile.TemporaryDirectory(prefix="mech-bench-")
        url = f"sqlite:///{Path(workdir.name) / 'mech.db'}"
    else:
        name = f"mech_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        migrate.upgrade(db)
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("bench"), NOW - timedelta(days=1))
            accounts.create_team(ctx, "acme", "Acme")
            accounts.create_team(ctx, "payments", "Payments", parent="acme")
        with db.transaction() as session:
            ctx = Ctx(session, system_principal("bench"), NOW - timedelta(days=1))
            alarms.create_service(ctx, "shop", "Shop", "payments")
        yield db
    finally:
        db.dispose()
        if workdir is not None:
            workdir.cleanup()
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def reset_metrics(db: Any) -> None:
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("TRUNCATE ops_metric_rollups, ops_metric_series RESTART IDENTITY"))
        else:
            conn.execute(text("DELETE FROM ops_metric_rollups"))
            conn.execute(text("DELETE FROM ops_metric_series"))


def reset_plain(db: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {PLAIN_TABLE}"))
        conn.execute(
            text(
                f"CREATE TABLE {PLAIN_TABLE} (series_id INTEGER NOT NULL, "
                "ts DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION NOT NULL)"
            )
        )


# --- the targets ----------------------------------------------------------------------


def bulk_insert(session: Any, rows: list[tuple[int, float, float]]) -> None:
    """The fastest plain way each database takes many rows: one executemany on SQLite,
    COPY FROM STDIN on PostgreSQL."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            f"INSERT INTO {PLAIN_TABLE} (series_id, ts, value) VALUES (?, ?, ?)", rows
        )
        return
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {PLAIN_TABLE} (series_id, ts, value) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def run_plain(db: Any, requests: list[Any], data: Data) -> None:
    for _, _, rows in requests:
        with db.transaction() as session:
            bulk_insert(session, rows)


def run_plain_json(db: Any, requests: list[Any], data: Data) -> None:
    ids = {tuple(sorted(labels.items())): i + 1 for i, labels in enumerate(data.labels)}
    for body, _, _ in requests:
        raw = json.loads(body)
        rows = [
            (ids[tuple(sorted(s["labels"].items()))], s["timestamp"], s["value"])
            for s in raw["samples"]
        ]
        with db.transaction() as session:
            bulk_insert(session, rows)


def run_ours_json(db: Any, requests: list[Any], data: Data) -> list[Any]:
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms
    from mechanisms.ops.api import decode_samples

    results = []
    for body, _, _ in requests:
        raw = decode_samples(body)  # what the API does with a request's body
        with db.transaction() as session:
            results.append(alarms.ingest_json(Ctx(session, system_principal("bench"), NOW), raw))
    return results


def run_ours_json_gc_paused(db: Any, requests: list[Any], data: Data) -> list[Any]:
    """As ``run_ours_json``, with the garbage collector paused while ``json.loads`` builds
    the body's objects (what the API could do for large bodies; see README)."""
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    results = []
    for body, _, _ in requests:
        gc.disable()
        try:
            raw = json.loads(body)
        finally:
            gc.enable()
        with db.transaction() as session:
            results.append(alarms.ingest_json(Ctx(session, system_principal("bench"), NOW), raw))
    return results


def run_ours_prometheus(db: Any, requests: list[Any], data: Data) -> list[Any]:
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms

    results = []
    for _, body, _ in requests:
        text_body = body.decode("utf-8")
        with db.transaction() as session:
            results.append(
                alarms.ingest_prometheus(Ctx(session, system_principal("bench"), NOW), text_body)
            )
    return results


def check_ours(db: Any, results: list[Any], data: Data) -> None:
    from mechanisms.ops.tables import MetricRollup, MetricSeries

    accepted = sum(r.accepted for r in results)
    if accepted != len(data.rows):
        raise AssertionError(f"{accepted} of {len(data.rows)} samples accepted")
    with db.transaction(write=False) as session:
        counted = session.execute(select(func.sum(MetricRollup.count))).scalar_one()
        series = session.execute(select(func.count()).select_from(MetricSeries)).scalar_one()
    if counted != len(data.rows) or series != len(data.labels):
        raise AssertionError(f"rollups count {counted} samples in {series} series")


def check_plain(db: Any, results: Any, data: Data) -> None:
    with db.engine.connect() as conn:
        stored = conn.execute(text(f"SELECT count(*) FROM {PLAIN_TABLE}")).scalar_one()
    if stored != len(data.rows):
        raise AssertionError(f"the plain table holds {stored} of {len(data.rows)} rows")


@dataclass
class Target:
    name: str
    run: Callable[[Any, list[Any], Data], Any]
    reset: Callable[[Any], None]
    check: Callable[[Any, Any, Data], None]


TARGETS = [
    Target("plain insert", run_plain, reset_plain, check_plain),
    Target("plain insert from JSON", run_plain_json, reset_plain, check_plain),
    Target("ours: JSON", run_ours_json, reset_metrics, check_ours),
    Target("ours: Prometheus text", run_ours_prometheus, reset_metrics, check_ours),
    Target("ours: JSON, GC paused in loads", run_ours_json_gc_paused, reset_metrics, check_ours),
]


@dataclass
class Result:
    backend: str
    name: str
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rate: float | None = None
    cpu_rate: float | None = None
    error: str | None = None


def time_once(target: Target, db: Any, requests: list[Any], data: Data) -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds of one run."""
    target.reset(db)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    results = target.run(db, requests, data)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    target.check(db, results, data)
    return elapsed, cpu


def prometheus_equals_library(text_body: str, lines: int = 20_000) -> bool:
    """Our Prometheus text parser gives exactly prometheus_client's samples (names,
    labels, values, timestamps, in order) on the first ``lines`` lines of the body."""
    from prometheus_client.parser import text_string_to_metric_families

    from mechanisms.ops import metrics

    head = "\n".join(text_body.split("\n")[:lines]) + "\n"
    theirs = [
        (s.name, s.labels, s.value, s.timestamp)
        for family in text_string_to_metric_families(head)
        for s in family.samples
    ]
    if not hasattr(metrics, "_prom_samples"):  # a version that uses the library's parser
        return True
    ours = metrics._prom_samples(head)
    return theirs == list(zip(ours.names, ours.labels, ours.values, ours.stamps, strict=True))


# --- accuracy -------------------------------------------------------------------------


def accuracy(db: Any, data: Data) -> list[dict[str, Any]]:
    """p50/p90/p99/p99.9 from the store (merged over all series, and of one series) against
    numpy.percentile(method="lower") on the same values: the sketch answers with a value
    of the rank asked for, within 1 %."""
    try:
        import numpy as np
    except ImportError:  # numpy comes with the test extra: pip install -e '.[test]'
        return []

    from mechanisms.ops import metrics

    out = []
    wanted = [("all 50 series merged", {}, [v for _, _, v in data.rows])]
    one = data.labels[0]
    wanted.append(
        (
            f"one series ({one['service']} {one['route']})",
            one,
            [v for s, _, v in data.rows if s == 0],
        )
    )
    if len(data.labels) != 50:
        wanted[0] = (f"all {len(data.labels)} series merged", {}, wanted[0][2])
    with db.transaction(write=False) as session:
        for what, match, values in wanted:
            row: dict[str, Any] = {"what": what, "samples": len(values), "quantiles": {}}
            for q in QUANTILES:
                ((_, got),) = metrics.query(
                    session, METRIC, match, f"p{q:g}", data.start, data.end, 86_400
                )
                exact = float(np.percentile(values, q, method="lower"))
                row["quantiles"][f"p{q:g}"] = {
                    "store": got,
                    "numpy": exact,
                    "relative_error": abs(got - exact) / exact,
                }
            out.append(row)
    return out


# --- report ---------------------------------------------------------------------------


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
    }


def server_version(db: Any) -> str:
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            return "SQLite " + conn.exec_driver_sql("select sqlite_version()").scalar_one()
        return conn.exec_driver_sql("show server_version").scalar_one().split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=200_000, help="samples per request")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best kept)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("MECH_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write JSON (to stdout without PATH)"
    )
    args = parser.parse_args(argv)
    progress = sys.stderr if args.json == "-" else sys.stdout
    started = time.perf_counter()
    load_before = os.getloadavg()

    data = make_data(args.samples, args.series, args.minutes)
    requests = data.bodies(min(args.batch, 200_000))
    same_as_library = prometheus_equals_library(requests[0][1].decode())
    print(
        f"  data: {len(data.rows):,} samples, {len(data.labels)} series, {args.minutes} min, "
        f"{len(requests)} request(s); JSON {sum(len(r[0]) for r in requests) / 1e6:.1f} MB, "
        f"text {sum(len(r[1]) for r in requests) / 1e6:.1f} MB",
        file=progress,
        flush=True,
    )
    results: list[Result] = []
    servers: dict[str, str] = {}
    quantiles: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        try:
            context = database(backend, args.pg_url)
            db = context.__enter__()
        except Exception as exc:  # no server: say so instead of failing
            for target in TARGETS:
                results.append(Result(backend, target.name, error=f"{type(exc).__name__}: {exc}"))
            continue
        try:
            servers[backend] = server_version(db)
            mine = [Result(backend, t.name) for t in TARGETS]
            results += mine
            for round_no in range(args.repeat):
                for target, result in zip(TARGETS, mine, strict=True):
                    if result.error:
                        continue
                    try:
                        elapsed, cpu = time_once(target, db, requests, data)
                    except Exception as exc:
                        result.error = f"{type(exc).__name__}: {exc}"[:500]
                        continue
                    result.seconds.append(elapsed)
                    result.cpu_seconds.append(cpu)
                    print(
                        f"  {backend} round {round_no + 1}/{args.repeat} {target.name}: "
                        f"{len(data.rows) / elapsed:,.0f} samples/s "
                        f"({len(data.rows) / cpu:,.0f} per CPU second)",
                        file=progress,
                        flush=True,
                    )
            for result in mine:
                if result.seconds and not result.error:
                    result.rate = len(data.rows) / min(result.seconds)
                    result.cpu_rate = len(data.rows) / min(result.cpu_seconds)
            if not quantiles and not mine[2].error:
                time_once(TARGETS[2], db, requests, data)
                quantiles = accuracy(db, data)
        finally:
            context.__exit__(None, None, None)

    def rate(backend: str, name: str) -> float | None:
        return next((r.rate for r in results if r.backend == backend and r.name == name), None)

    ratios: dict[str, dict[str, float | None]] = {}
    for backend in {r.backend for r in results}:
        ratios[backend] = {}
        for ours in [r.name for r in results if r.name.startswith("ours")]:
            for plain in ("plain insert", "plain insert from JSON"):
                a, b = rate(backend, ours), rate(backend, plain)
                ratios[backend][f"{ours} / {plain}"] = a / b if a and b else None
    report = {
        "benchmark": "ops_ingest",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {
            p: version_of(p)
            for p in (
                "mechanisms",
                "ddsketch",
                "protobuf",
                "SQLAlchemy",
                "psycopg",
                "prometheus_client",
            )
        },
        "servers": servers,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "samples": len(data.rows),
        "series": len(data.labels),
        "minutes": args.minutes,
        "batch": args.batch,
        "requests": len(requests),
        "repeat": args.repeat,
        "results": [r.__dict__ for r in results],
        "ratios": ratios,
        "target_rate": TARGET_RATE,
        "target_met": {
            f"{r.backend} {r.name}": (r.rate or 0) >= TARGET_RATE
            for r in results
            if r.name.startswith("ours")
        },
        "target_met_per_cpu_second": {
            f"{r.backend} {r.name}": (r.cpu_rate or 0) >= TARGET_RATE
            for r in results
            if r.name.startswith("ours")
        },
        "accuracy": quantiles,
        "prometheus_parse_equals_library": same_as_library,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        payload = json.dumps(report, indent=2)
        if args.json == "-":
            print(payload)
        else:
            Path(args.json).write_text(payload + "\n")
    if args.json != "-":
        print()
        print_table(report, results)
    return 0


def print_table(report: dict[str, Any], results: list[Result]) -> None:
    m = report["machine"]
    print(
        f"ops_ingest: {report['samples']:,} samples, {report['series']} series over "
        f"{report['minutes']} min, {report['requests']} request(s), best of {report['repeat']} "
        f"rounds; {m['implementation']} {m['python']} on {m['cpu']} ({m['cores']} cores)"
    )
    print()
    print(
        f"{'backend':11} {'target':31} {'samples/s':>10} {'s':>6} {'vs target':>9} "
        f"{'per CPU s':>10} {'vs target':>9}"
    )
    for r in results:
        if r.rate is None or r.cpu_rate is None:
            print(f"{r.backend:11} {r.name:31}  not measured: {r.error}")
            continue
        ours = r.name.startswith("ours")
        versus = f"{r.rate / TARGET_RATE:.2f}x" if ours else ""
        cpu_versus = f"{r.cpu_rate / TARGET_RATE:.2f}x" if ours else ""
        print(
            f"{r.backend:11} {r.name:31} {r.rate:>10,.0f} {report['samples'] / r.rate:>6.2f} "
            f"{versus:>9} {r.cpu_rate:>10,.0f} {cpu_versus:>9}"
        )
    print()
    for backend, ratios in sorted(report["ratios"].items()):
        for name, ratio in ratios.items():
            if ratio is not None:
                print(f"{backend:11} {name}: {ratio:.2f}x")
    print()
    for key, met in report["target_met"].items():
        per_cpu = report["target_met_per_cpu_second"][key]
        print(
            f"target >= {TARGET_RATE:,} samples/s, {key}: {'met' if met else 'NOT met'} "
            f"(per CPU second of this process: {'met' if per_cpu else 'NOT met'})"
        )
    print(
        f"our Prometheus parser gives prometheus_client's samples: "
        f"{report['prometheus_parse_equals_library']}"
    )
    if report["accuracy"]:
        print()
        print("percentiles from the store vs numpy.percentile(method='lower'), relative error:")
        for row in report["accuracy"]:
            cells = ", ".join(f"{q} {v['relative_error']:.3%}" for q, v in row["quantiles"].items())
            print(f"  {row['what']} ({row['samples']:,} samples): {cells}")
    before, after = report["load_average_before"][0], report["load_average_after"][0]
    print(
        f"({report['seconds']:.0f} s; 1-minute load average {before:.2f} before, {after:.2f} after)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
