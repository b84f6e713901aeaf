"""OFREP single-flag evaluation over HTTP, side by side with a bare Starlette endpoint:
requests per second for both and the ratio.

- OFREP: the real app (``mechanisms.app.create_app``) on a fresh SQLite file migrated with
  ``mechanisms.core.migrate.upgrade``, seeded with a team, a viewer and their API token, an
  app ``shop`` and a boolean flag with three attribute rules and a 50 % split in ``beta``;
  ``POST /sdk/shop/beta/ofrep/v1/evaluate/flags/new-checkout`` with a bearer token.
- The peer: a bare Starlette app with one POST endpoint returning a constant JSON body of
  the same shape.

Each is served by uvicorn in its own subprocess (one process, one worker,
``log_level="warning"``, no access log, uvicorn's default loop/HTTP choices), on
127.0.0.1 only, and driven by the same load tool with the same script, duration,
connections and threads: wrk (Debian package ``wrk``) with a Lua script that POSTs a JSON
context with a fresh targeting key per request and the Authorization header. Without wrk
the script falls back to a Python load generator (httpx in threads) and says so.
Targets are measured in alternating rounds (bare, OFREP, bare, OFREP, …) so a burst of
load on a shared machine does not fall on one of them only; the best round counts.

    .venv/bin/python benchmarks/ofrep_http.py                  # 2 rounds of 10 s each
    .venv/bin/python benchmarks/ofrep_http.py --duration 5 --rounds 1 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

APP, ENVIRONMENT, FLAG = "shop", "beta", "new-checkout"
OFREP_PATH = f"/sdk/{APP}/{ENVIRONMENT}/ofrep/v1/evaluate/flags/{FLAG}"
BARE_PATH = "/evaluate"
TARGET_RATIO = 0.5
RULES = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "rules": [
        {
            "id": "eu",
            "clauses": [{"attribute": "country", "op": "in", "values": ["DE", "FR"]}],
            "serve": {"variant": "on"},
        },
        {
            "id": "enterprise",
            "clauses": [{"attribute": "plan", "op": "equals", "values": ["enterprise"]}],
            "serve": {"variant": "on"},
        },
        {
            "id": "seniors",
            "clauses": [{"attribute": "age", "op": "gt", "values": [60]}],
            "serve": {"variant": "on"},
        },
    ],
    "fallthrough": {"split": [{"variant": "on", "percent": 50}, {"variant": "off", "percent": 50}]},
}
# What the bare endpoint answers: the shape of an OFREP success.
CONSTANT = {
    "key": FLAG,
    "reason": "SPLIT",
    "variant": "on",
    "value": True,
    "metadata": {"version": 2, "kind": "release"},
}
LUA = """
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

request = function()
  counter = counter + 1
  local body = string.format(
    '{"context":{"targetingKey":"user-%%d-%%d","country":"US","plan":"free","age":30}}',
    counter, math.random(1000000))
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, " ..
    "\\"write\\": %%d, \\"status\\": %%d, \\"timeout\\": %%d, \\"latency_mean_us\\": %%f, " ..
    "\\"latency_p50_us\\": %%d, \\"latency_p99_us\\": %%d}\\n",
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""


# --- the servers (run in subprocesses) ------------------------------------------------


def serve(kind: str, port: int, database_url: str | None) -> None:
    import uvicorn

    if kind == "ofrep":
        from mechanisms.app import create_app
        from mechanisms.core.config import Settings
        from mechanisms.core.db import Database

        assert database_url
        app: Any = create_app(Database(database_url), settings=Settings())
    else:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def evaluate(request: Request) -> JSONResponse:
            return JSONResponse(CONSTANT)

        app = Starlette(routes=[Route(BARE_PATH, evaluate, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


# --- set-up ---------------------------------------------------------------------------


def seed(database_url: str) -> str:
    """Migrate a fresh database and seed it; returns a viewer's API token."""
    from mechanisms.core import accounts, migrate
    from mechanisms.core.context import Ctx
    from mechanisms.core.db import Database
    from mechanisms.core.identity import system_principal
    from mechanisms.flags import service

    db = Database(database_url)
    migrate.upgrade(db)
    now = datetime.now(UTC)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("benchmark"), now)
        accounts.create_team(ctx, "acme", "Acme")
        accounts.create_user(ctx, "reader")  # no password: the token is all it uses
        accounts.set_membership(ctx, "acme", "reader", "viewer")
        token = accounts.create_token(ctx, "reader", "benchmark", "viewer")[1]
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("benchmark"), now)
        service.create_app(ctx, APP, "Shop", "acme")
        service.create_flag(ctx, APP, FLAG)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("benchmark"), now)
        service.set_config(ctx, APP, FLAG, ENVIRONMENT, RULES)
    db.dispose()
    return token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(kind: str, database_url: str | None, workdir: Path) -> Iterator[tuple[str, int]]:
    """A uvicorn subprocess serving ``kind``; yields its base URL and pid, stops it after."""
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    if database_url:
        command += ["--database-url", database_url]
    log = (workdir / f"{kind}.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the {kind} server exited: {(workdir / f'{kind}.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def check(url: str, token: str, expect_ofrep: bool) -> dict[str, Any]:
    """One request, its answer checked, so the load run measures real work."""
    import httpx

    answers = []
    for i in range(200):
        body = {
            "context": {"targetingKey": f"check-{i}", "country": "US", "plan": "free", "age": 30}
        }
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        answers.append(response.json())
    if expect_ofrep:
        matched = httpx.post(
            url,
            json={"context": {"targetingKey": "m", "country": "DE"}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        if matched.get("value") is not True or matched.get("metadata", {}).get("ruleId") != "eu":
            raise RuntimeError(f"the rule did not match: {matched}")
        share = sum(a["value"] is True for a in answers) / len(answers)
        if {a["reason"] for a in answers} != {"SPLIT"} or not 0.35 <= share <= 0.65:
            raise RuntimeError(f"the split looks wrong: {share:.0%} true, {answers[:3]}")
        unauthenticated = httpx.post(url, json={}).status_code
        if unauthenticated != 401:
            raise RuntimeError(f"a request without a token got {unauthenticated}, not 401")
    return answers[0]


# --- load -----------------------------------------------------------------------------


def run_wrk(
    url: str, script: Path, duration: int, connections: int, threads: int
) -> dict[str, Any]:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    found = re.search(r"^RESULT (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    stats = json.loads(found.group(1))
    seconds = stats["duration_us"] / 1e6
    socket_errors = stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    return {
        "requests": stats["requests"],
        "seconds": seconds,
        "rps": stats["requests"] / seconds,
        "non_2xx": stats["status"],
        "socket_errors": socket_errors,
        "latency_mean_ms": stats["latency_mean_us"] / 1000,
        "latency_p50_ms": stats["latency_p50_us"] / 1000,
        "latency_p99_ms": stats["latency_p99_us"] / 1000,
    }


def run_python_load(
    url: str, token: str, duration: int, connections: int, threads: int
) -> dict[str, Any]:
    """The fallback: ``connections`` threads, each with its own keep-alive httpx client.
    The GIL makes this a much weaker client than wrk: figures are lower bounds."""
    import httpx

    deadline = time.perf_counter() + duration
    counts = {"ok": 0, "non_2xx": 0, "errors": 0}
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        ok = bad = errors = 0
        mine: list[float] = []
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=headers) as client:
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                body = {
                    "context": {
                        "targetingKey": f"user-{n}-{i}",
                        "country": "US",
                        "plan": "free",
                        "age": 30,
                    }
                }
                start = time.perf_counter()
                try:
                    status = client.post(url, json=body).status_code
                except httpx.HTTPError:
                    errors += 1
                    continue
                mine.append(time.perf_counter() - start)
                if 200 <= status < 300:
                    ok += 1
                else:
                    bad += 1
        with lock:
            counts["ok"] += ok
            counts["non_2xx"] += bad
            counts["errors"] += errors
            latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    total = counts["ok"] + counts["non_2xx"]

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": total,
        "seconds": seconds,
        "rps": total / seconds,
        "non_2xx": counts["non_2xx"],
        "socket_errors": counts["errors"],
        "latency_mean_ms": (sum(latencies) / len(latencies) * 1000) if latencies else 0,
        "latency_p50_ms": pct(0.5),
        "latency_p99_ms": pct(0.99),
    }


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
    }


def versions() -> dict[str, str | None]:
    import importlib.metadata

    found: dict[str, str | None] = {}
    for name in ("uvicorn", "starlette", "fastapi", "uvloop", "httptools"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip().splitlines()
    return " ".join(text[0].split()[:2]) if text else "wrk"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per target")
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write JSON (to stdout without PATH)"
    )
    parser.add_argument("--python-load", action="store_true", help="use the httpx fallback")
    parser.add_argument("--serve", choices=["ofrep", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.database_url)
        return 0

    progress = sys.stderr if args.json == "-" else sys.stdout
    tool = None if args.python_load else wrk_version()
    if tool is None:
        reason = (
            "asked for" if args.python_load else "wrk is not installed (apt-get install -y wrk)"
        )
        print(f"NOTE: using the Python load generator (httpx in threads): {reason}", file=progress)
    workdir = Path(tempfile.mkdtemp(prefix="mech-ofrep-bench-"))
    database_url = f"sqlite:///{workdir / 'mech.db'}"
    token = seed(database_url)
    script = workdir / "ofrep.lua"
    script.write_text(LUA % {"token": token})
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "ofrep": []}
    samples: dict[str, Any] = {}

    with (
        server("bare", None, workdir) as (bare_base, bare_pid),
        server("ofrep", database_url, workdir) as (ofrep_base, ofrep_pid),
    ):
        urls = {"bare": bare_base + BARE_PATH, "ofrep": ofrep_base + OFREP_PATH}
        pids = {"bare": bare_pid, "ofrep": ofrep_pid}
        samples["bare"] = check(urls["bare"], token, expect_ofrep=False)
        samples["ofrep"] = check(urls["ofrep"], token, expect_ofrep=True)
        for round_no in range(args.rounds):
            for name in ("bare", "ofrep"):
                cpu_before = cpu_seconds(pids[name])
                if tool:
                    run = run_wrk(urls[name], script, args.duration, args.connections, args.threads)
                else:
                    run = run_python_load(
                        urls[name], token, args.duration, args.connections, args.threads
                    )
                # CPU the server process burnt per request: a figure that other load on a
                # shared machine disturbs far less than requests per second.
                run["server_cpu_ms_per_request"] = (
                    (cpu_seconds(pids[name]) - cpu_before) * 1000 / max(run["requests"], 1)
                )
                runs[name].append(run)
                print(
                    f"  round {round_no + 1}/{args.rounds} {name}: {run['rps']:,.0f} req/s, "
                    f"server CPU {run['server_cpu_ms_per_request']:.3f} ms/request, "
                    f"p99 {run['latency_p99_ms']:.1f} ms, non-2xx {run['non_2xx']}, "
                    f"socket errors {run['socket_errors']}",
                    file=progress,
                    flush=True,
                )

    best = {name: max(r, key=lambda run: run["rps"]) for name, r in runs.items()}
    errors = {
        name: {
            "non_2xx": sum(run["non_2xx"] for run in r),
            "socket_errors": sum(run["socket_errors"] for run in r),
        }
        for name, r in runs.items()
    }
    ratio = best["ofrep"]["rps"] / best["bare"]["rps"]
    cpu = {name: min(run["server_cpu_ms_per_request"] for run in r) for name, r in runs.items()}
    clean = all(e["non_2xx"] == 0 and e["socket_errors"] == 0 for e in errors.values())
    report = {
        "benchmark": "ofrep_http",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": versions(),
        "load_tool": tool or "python httpx threads (fallback)",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "duration_s": args.duration,
        "connections": args.connections,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs": runs,
        "best": best,
        "errors": errors,
        "sample_responses": samples,
        "ratio_ofrep_to_bare": ratio,
        "server_cpu_ms_per_request": cpu,
        "cpu_ratio_bare_to_ofrep": cpu["bare"] / cpu["ofrep"] if cpu["ofrep"] else None,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "errors_zero": clean,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if args.json != "-":
        print()
        print(
            f"ofrep_http: {report['load_tool']}, {args.duration} s x {args.rounds} rounds, "
            f"{args.connections} connections, {args.threads} threads, 127.0.0.1; uvicorn "
            f"{report['versions']['uvicorn']} (1 process, 1 worker) on {report['machine']['cpu']} "
            f"({report['machine']['cores']} cores)"
        )
        print()
        print(
            f"{'target':28} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} "
            f"{'non-2xx':>8} {'sock err':>9}"
        )
        for name, label in (("bare", "bare Starlette POST"), ("ofrep", "OFREP evaluate (ours)")):
            b = best[name]
            print(
                f"{label:28} {b['rps']:>10,.0f} {b['latency_p50_ms']:>8.1f} "
                f"{b['latency_p99_ms']:>8.1f} {cpu[name]:>11.3f} {errors[name]['non_2xx']:>8} "
                f"{errors[name]['socket_errors']:>9}"
            )
        print()
        print(
            f"OFREP / bare: {ratio:.2f}x  (target >= {TARGET_RATIO:g}x: "
            f"{'met' if report['target_met'] else 'NOT met'}); errors zero: {clean}"
        )
        print(
            f"server CPU per request, bare / OFREP: {report['cpu_ratio_bare_to_ofrep']:.2f}x "
            "(the requests/s ratio a CPU-bound server would reach on an idle machine)"
        )
        before, after = load_before[0], report["load_average_after"][0]
        print(
            f"({report['seconds']:.0f} s; 1-minute load average {before:.2f} before, "
            f"{after:.2f} after)"
        )
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
