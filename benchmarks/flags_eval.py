"""In-process flag evaluation, side by side with the peers: evaluations per second and
our ratio to each.

One boolean flag, three attribute rules that serve ``true`` (none of them match the
contexts timed) and a 50 % split as the fallthrough, so every evaluation walks all three
rules and then hashes the key. 100,000 distinct targeting keys; every engine gets the
same attribute values (country="US", plan="free", age=30 against country in [DE, FR],
plan == enterprise, age > 60), each in its own SDK's context type, built before timing.

Engines:
- ours through ``FlagsClient`` (offline mode, a bootstrap rule set, exposures off);
- ours through the OpenFeature SDK with ``MechanismsProvider``;
- peers, each evaluating the same flag locally from a local definition, with no network
  and no events, analytics or impressions: UnleashClient, growthbook,
  launchdarkly-server-sdk, flagsmith, openfeature-flagd-core;
- the floor: a hand-written function with the same three comparisons and the same mmh3
  split (it must give exactly our answers).

Before timing, each engine is checked: a context matching each rule must give true, and
about half of the 100,000 keys must be true (so every engine really evaluates the rules
and the split). Each engine is timed best of ``--repeat`` runs with the GC disabled.

    .venv/bin/python benchmarks/flags_eval.py            # a table
    .venv/bin/python benchmarks/flags_eval.py --json     # JSON on stdout
    .venv/bin/python benchmarks/flags_eval.py --json out.json --keys 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAG = "new-checkout"
# The attribute values every engine is given for the timed contexts: no rule matches.
ATTRIBUTES = {"country": "US", "plan": "free", "age": 30}
# One context per rule that must match it (the sanity check that rules are evaluated).
MATCHING = [
    {"country": "DE", "plan": "free", "age": 30},
    {"country": "US", "plan": "enterprise", "age": 30},
    {"country": "US", "plan": "free", "age": 61},
]
TARGET_RATIO = 10.0


@dataclass
class Bench:
    """One engine, ready to time: ``call(context) -> bool`` and its prebuilt contexts."""

    name: str
    package: str
    call: Callable[[Any], bool]
    contexts: list[Any]
    matching: list[Any]
    note: str = ""
    close: Callable[[], None] = lambda: None


@dataclass
class Result:
    name: str
    package: str
    version: str | None
    rate: float | None = None
    seconds: list[float] = field(default_factory=list)
    true_share: float | None = None
    note: str = ""
    error: str | None = None


def keys_for(n: int) -> list[str]:
    return [f"user-{i:06d}" for i in range(n)]


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- ours -----------------------------------------------------------------------------


def our_ruleset() -> Any:
    from mechanisms.flags.domain import RuleSet

    return RuleSet.model_validate(
        {
            "environment": "bench",
            "flags": {
                FLAG: {
                    "key": FLAG,
                    "type": "boolean",
                    "salt": FLAG,
                    "version": 1,
                    "config": {
                        "variants": {"on": True, "off": False},
                        "off_variant": "off",
                        "rules": [
                            {
                                "id": "eu",
                                "clauses": [
                                    {"attribute": "country", "op": "in", "values": ["DE", "FR"]}
                                ],
                                "serve": {"variant": "on"},
                            },
                            {
                                "id": "enterprise",
                                "clauses": [
                                    {"attribute": "plan", "op": "equals", "values": ["enterprise"]}
                                ],
                                "serve": {"variant": "on"},
                            },
                            {
                                "id": "seniors",
                                "clauses": [{"attribute": "age", "op": "gt", "values": [60]}],
                                "serve": {"variant": "on"},
                            },
                        ],
                        "fallthrough": {
                            "split": [
                                {"variant": "on", "percent": 50},
                                {"variant": "off", "percent": 50},
                            ]
                        },
                    },
                }
            },
        }
    )


def ours_client(keys: list[str]) -> Bench:
    from mechanisms.sdk.client import FlagsClient

    client = FlagsClient(mode="offline", bootstrap=our_ruleset(), report_exposures=False)
    boolean = client.boolean

    def ctx(key: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"targetingKey": key, **attrs}

    return Bench(
        "ours: FlagsClient.boolean",
        "mechanisms",
        lambda c: boolean(FLAG, False, c),
        [ctx(k, ATTRIBUTES) for k in keys],
        [ctx("m", a) for a in MATCHING],
        close=client.close,
    )


def ours_openfeature(keys: list[str]) -> Bench:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from mechanisms.sdk.client import FlagsClient
    from mechanisms.sdk.provider import MechanismsProvider

    client = FlagsClient(mode="offline", bootstrap=our_ruleset(), report_exposures=False)
    api.set_provider(MechanismsProvider(client))
    of_client = api.get_client()
    get = of_client.get_boolean_value
    return Bench(
        "ours: OpenFeature get_boolean_value",
        "mechanisms",
        lambda c: get(FLAG, False, c),
        [EvaluationContext(k, dict(ATTRIBUTES)) for k in keys],
        [EvaluationContext("m", dict(a)) for a in MATCHING],
        note="openfeature-sdk " + (version_of("openfeature-sdk") or "?"),
        close=api.clear_providers,
    )


# --- the floor ------------------------------------------------------------------------


def floor(keys: list[str]) -> Bench:
    import mmh3

    countries = frozenset(("DE", "FR"))
    hash32 = mmh3.hash
    prefix = FLAG + "/"

    def evaluate(ctx: dict[str, Any]) -> bool:
        if ctx.get("country") in countries:
            return True
        if ctx.get("plan") == "enterprise":
            return True
        age = ctx.get("age")
        if age is not None and age > 60:
            return True
        return hash32(prefix + ctx["targetingKey"], 0, signed=False) % 100_000 < 50_000

    def ctx(key: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"targetingKey": key, **attrs}

    return Bench(
        "floor: hand-written Python + mmh3",
        "mmh3",
        evaluate,
        [ctx(k, ATTRIBUTES) for k in keys],
        [ctx("m", a) for a in MATCHING],
    )


# --- peers ----------------------------------------------------------------------------


def unleash(keys: list[str]) -> Bench:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import BaseCache
    from UnleashClient.constants import FEATURES_URL
    from UnleashClient.utils import InstanceAllowType

    class MemoryCache(BaseCache):
        """Keeps the bootstrap in memory (the default FileCache writes to disk)."""

        def __init__(self) -> None:
            self.data: dict[str, Any] = {}
            self.bootstrapped = False

        def bootstrap(self, features: dict[str, Any]) -> None:
            self.data[FEATURES_URL] = json.dumps(features)
            self.bootstrapped = True

        def set(self, key: str, value: Any) -> None:
            self.data[key] = value

        def mset(self, data: dict) -> None:
            self.data.update(data)

        def get(self, key: str, default: Any = None) -> Any:
            return self.data.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self.data

        def destroy(self) -> None:
            self.data.clear()

    def rule(context_name: str, operator: str, values: list[str]) -> dict[str, Any]:
        return {
            "name": "default",
            "parameters": {},
            "constraints": [
                {
                    "contextName": context_name,
                    "operator": operator,
                    "values": values,
                    "inverted": False,
                    "caseInsensitive": False,
                }
            ],
        }

    features = {
        "version": 1,
        "features": [
            {
                "name": FLAG,
                "type": "release",
                "project": "default",
                "enabled": True,
                "impressionData": False,
                "strategies": [
                    rule("country", "IN", ["DE", "FR"]),
                    rule("plan", "IN", ["enterprise"]),
                    # NUM_GT takes its value as a string.
                    {
                        "name": "default",
                        "parameters": {},
                        "constraints": [
                            {
                                "contextName": "age",
                                "operator": "NUM_GT",
                                "value": "60",
                                "inverted": False,
                            }
                        ],
                    },
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": "50", "stickiness": "userId", "groupId": FLAG},
                        "constraints": [],
                    },
                ],
            }
        ],
    }
    cache = MemoryCache()
    cache.bootstrap(features)
    client = UnleashClient(
        url="http://127.0.0.1:9",  # never contacted: no registration, no fetching, no metrics
        app_name="bench",
        disable_metrics=True,
        disable_registration=True,
        refresh_interval=3600,
        cache=cache,
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )
    client.initialize_client(fetch_toggles=False)
    is_enabled = client.is_enabled

    def ctx(key: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"userId": key, **attrs}

    return Bench(
        "UnleashClient",
        "UnleashClient",
        lambda c: is_enabled(FLAG, c),
        [ctx(k, ATTRIBUTES) for k in keys],
        [ctx("m", a) for a in MATCHING],
        note="bootstrap dict in memory, initialize_client(fetch_toggles=False), metrics and "
        "registration off; 3 `default` strategies with one constraint each + flexibleRollout 50 %",
        close=client.destroy,
    )


def growthbook(keys: list[str]) -> Bench:
    from growthbook import GrowthBook

    features = {
        FLAG: {
            "defaultValue": False,
            "rules": [
                {"condition": {"country": {"$in": ["DE", "FR"]}}, "force": True},
                {"condition": {"plan": "enterprise"}, "force": True},
                {"condition": {"age": {"$gt": 60}}, "force": True},
                {"force": True, "coverage": 0.5, "hashAttribute": "id"},
            ],
        }
    }
    gb = GrowthBook(features=features)  # no client key: no fetching; no tracking callbacks

    def evaluate(attributes: dict[str, Any]) -> bool:
        gb.set_attributes(attributes)
        return gb.is_on(FLAG)

    def ctx(key: str, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"id": key, **attrs}

    return Bench(
        "growthbook",
        "growthbook",
        evaluate,
        [ctx(k, ATTRIBUTES) for k in keys],
        [ctx("m", a) for a in MATCHING],
        note="one GrowthBook instance, set_attributes + is_on per evaluation (cheaper than an "
        "instance per user); 3 force rules with conditions + a force rule with coverage 0.5",
        close=gb.destroy,
    )


def launchdarkly(keys: list[str], workdir: Path) -> Bench:
    import ldclient
    from ldclient import Context
    from ldclient.config import Config
    from ldclient.integrations import Files

    def rule(rule_id: str, attribute: str, op: str, values: list[Any]) -> dict[str, Any]:
        return {
            "id": rule_id,
            "clauses": [
                {
                    "contextKind": "user",
                    "attribute": attribute,
                    "op": op,
                    "values": values,
                    "negate": False,
                }
            ],
            "variation": 1,
            "trackEvents": False,
        }

    flag = {
        "key": FLAG,
        "version": 1,
        "on": True,
        "salt": FLAG,
        "variations": [False, True],
        "offVariation": 0,
        "targets": [],
        "contextTargets": [],
        "prerequisites": [],
        "rules": [
            rule("eu", "country", "in", ["DE", "FR"]),
            rule("enterprise", "plan", "in", ["enterprise"]),
            rule("seniors", "age", "greaterThan", [60]),
        ],
        "fallthrough": {
            "rollout": {
                "variations": [{"variation": 1, "weight": 50000}, {"variation": 0, "weight": 50000}]
            }
        },
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "clientSide": False,
    }
    path = workdir / "launchdarkly.json"
    path.write_text(json.dumps({"flags": {FLAG: flag}, "segments": {}}))
    config = Config(
        "bench-sdk-key",
        update_processor_class=Files.new_data_source(paths=[str(path)]),
        send_events=False,
        diagnostic_opt_out=True,
    )
    client = ldclient.LDClient(config=config, start_wait=5)
    if not client.is_initialized():
        raise RuntimeError("the LaunchDarkly client did not load the flag file")
    variation = client.variation

    def ctx(key: str, attrs: dict[str, Any]) -> Any:
        builder = Context.builder(key).kind("user")
        for name, value in attrs.items():
            builder.set(name, value)
        return builder.build()

    return Bench(
        "launchdarkly-server-sdk",
        "launchdarkly-server-sdk",
        lambda c: variation(FLAG, c, False),
        [ctx(k, ATTRIBUTES) for k in keys],
        [ctx("m", a) for a in MATCHING],
        note="file data source, send_events=False, diagnostics off; 3 rules + 50/50 rollout",
        close=client.close,
    )


def flagsmith(keys: list[str], workdir: Path) -> Bench:
    from flagsmith import Flagsmith
    from flagsmith.offline_handlers import LocalFileHandler

    feature = {"id": 1, "name": FLAG, "type": "STANDARD"}

    def state(enabled: bool, priority: int | None) -> dict[str, Any]:
        found: dict[str, Any] = {
            "feature": feature,
            "enabled": enabled,
            "feature_state_value": None,
            "featurestate_uuid": str(uuid.uuid4()),
            "multivariate_feature_state_values": [],
        }
        if priority is not None:
            found["feature_segment"] = {"priority": priority}
        return found

    def segment(seg_id: int, name: str, operator: str, prop: str, value: str) -> dict[str, Any]:
        return {
            "id": seg_id,
            "name": name,
            "rules": [
                {
                    "type": "ALL",
                    "conditions": [],
                    "rules": [
                        {
                            "type": "ALL",
                            "conditions": [
                                {"operator": operator, "property_": prop, "value": value}
                            ],
                            "rules": [],
                        }
                    ],
                }
            ],
            "feature_states": [state(True, seg_id)],
        }

    document = {
        "api_key": "bench",
        "name": "bench",
        "updated_at": "2026-11-26T00:00:00+00:00",
        "feature_states": [state(False, None)],
        "identity_overrides": [],
        "project": {
            "segments": [
                segment(1, "eu", "IN", "country", "DE,FR"),
                segment(2, "enterprise", "EQUAL", "plan", "enterprise"),
                segment(3, "seniors", "GREATER_THAN", "age", "60"),
                segment(4, "half", "PERCENTAGE_SPLIT", "", "50"),
            ]
        },
    }
    path = workdir / "flagsmith.json"
    path.write_text(json.dumps(document))
    client = Flagsmith(
        offline_mode=True,
        offline_handler=LocalFileHandler(str(path)),
        enable_analytics=False,
        enable_events=False,
    )
    get_identity_flags = client.get_identity_flags

    def evaluate(ctx: tuple[str, dict[str, Any]]) -> bool:
        return get_identity_flags(ctx[0], ctx[1]).is_feature_enabled(FLAG)

    return Bench(
        "flagsmith",
        "flagsmith",
        evaluate,
        [(k, dict(ATTRIBUTES)) for k in keys],
        [("m", dict(a)) for a in MATCHING],
        note="offline mode, local environment document, analytics off; 4 segment overrides "
        "(IN, EQUAL, GREATER_THAN, PERCENTAGE_SPLIT 50)",
    )


def flagd(keys: list[str]) -> Bench:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(
        {
            "flags": {
                FLAG: {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "targeting": {
                        "if": [
                            {"in": [{"var": "country"}, ["DE", "FR"]]},
                            "on",
                            {"==": [{"var": "plan"}, "enterprise"]},
                            "on",
                            {">": [{"var": "age"}, 60]},
                            "on",
                            {"fractional": [["on", 50], ["off", 50]]},
                        ]
                    },
                }
            }
        }
    )
    resolve = core.resolve_boolean_value
    return Bench(
        "openfeature-flagd-core",
        "openfeature-flagd-core",
        lambda c: resolve(FLAG, False, c).value,
        [EvaluationContext(k, dict(ATTRIBUTES)) for k in keys],
        [EvaluationContext("m", dict(a)) for a in MATCHING],
        note="FlagdCore.resolve_boolean_value on a JSON Logic if/in/==/>/fractional targeting",
    )


# --- running --------------------------------------------------------------------------


def time_once(call: Callable[[Any], bool], contexts: list[Any]) -> tuple[float, list[bool]]:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        results = [call(c) for c in contexts]
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, results


def quietly(fn: Callable[[], Any]) -> Any:
    """Peers print banners and warnings; keep the report clean."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def prepare(name: str, package: str, make: Callable[[], Bench]) -> tuple[Result, Bench | None]:
    """Build an engine and check it: each rule matches its own context."""
    result = Result(name, package, version_of(package))
    try:
        bench = quietly(make)
    except Exception as exc:  # a peer that does not install, import or load
        result.error = f"{type(exc).__name__}: {exc}"
        return result, None
    result.note = bench.note
    try:
        for i, ctx in enumerate(bench.matching):
            if quietly(lambda ctx=ctx: bench.call(ctx)) is not True:
                raise AssertionError(f"rule {i + 1} does not match a context made for it")
        quietly(lambda: [bench.call(c) for c in bench.contexts[:2000]])  # warm-up
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            bench.close()
        return result, None
    return result, bench


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


def engines(keys: list[str], workdir: Path) -> list[tuple[str, str, Callable[[], Bench]]]:
    return [
        ("ours: FlagsClient.boolean", "mechanisms", lambda: ours_client(keys)),
        ("ours: OpenFeature get_boolean_value", "mechanisms", lambda: ours_openfeature(keys)),
        ("floor: hand-written Python + mmh3", "mmh3", lambda: floor(keys)),
        ("UnleashClient", "UnleashClient", lambda: unleash(keys)),
        ("growthbook", "growthbook", lambda: growthbook(keys)),
        ("launchdarkly-server-sdk", "launchdarkly-server-sdk", lambda: launchdarkly(keys, workdir)),
        ("flagsmith", "flagsmith", lambda: flagsmith(keys, workdir)),
        ("openfeature-flagd-core", "openfeature-flagd-core", lambda: flagd(keys)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="distinct targeting keys")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per engine (best kept)")
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write JSON (to stdout without PATH)"
    )
    args = parser.parse_args(argv)
    progress = sys.stderr if args.json == "-" else sys.stdout

    # The peers log warnings about running offline; none of that is under test.
    logging.disable(logging.WARNING)
    keys = keys_for(args.keys)
    workdir = Path(tempfile.mkdtemp(prefix="mech-bench-"))
    started = time.perf_counter()
    load_before = os.getloadavg()

    prepared = [prepare(name, package, make) for name, package, make in engines(keys, workdir)]
    answers: dict[str, list[bool]] = {}
    # Rounds: every engine runs once per round, so a burst of load on a shared machine
    # falls on all of them rather than on one.
    for round_no in range(args.repeat):
        for result, bench in prepared:
            if bench is None or result.error:
                continue
            try:
                elapsed, answer = quietly(lambda b=bench: time_once(b.call, b.contexts))
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                continue
            result.seconds.append(elapsed)
            answers[result.name] = answer
            print(
                f"  round {round_no + 1}/{args.repeat} {result.name}: {len(keys) / elapsed:,.0f}/s",
                file=progress,
                flush=True,
            )
    for result, bench in prepared:
        if bench is not None:
            with contextlib.suppress(Exception):
                quietly(bench.close)
        answer = answers.get(result.name)
        if result.error or not answer:
            continue
        if any(r is not True and r is not False for r in answer):
            result.error = "an evaluation did not return a boolean"
            continue
        result.true_share = sum(answer) / len(answer)
        if not 0.48 <= result.true_share <= 0.52:
            result.error = f"{result.true_share:.1%} true, not about 50 %"
            continue
        result.rate = len(keys) / min(result.seconds)

    results = [r for r, _ in prepared]
    ours, via_openfeature, floor_result = results[0], results[1], results[2]
    agrees = bool(answers.get(ours.name)) and answers.get(ours.name) == answers.get(
        floor_result.name
    )
    peers = [r for r in results[3:] if r.rate]
    fastest = max(peers, key=lambda r: r.rate or 0) if peers else None

    def ratio(a: Result | None, b: Result | None) -> float | None:
        return a.rate / b.rate if a and b and a.rate and b.rate else None

    report = {
        "benchmark": "flags_eval",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "keys": args.keys,
        "repeat": args.repeat,
        "engines": [r.__dict__ for r in results],
        "ours_equals_floor": agrees,
        "ratio_ours_to_peer": {r.name: ratio(ours, r) for r in peers},
        "fastest_peer": fastest.name if fastest else None,
        "ratio_ours_to_fastest_peer": ratio(ours, fastest),
        "ratio_openfeature_to_fastest_peer": ratio(via_openfeature, fastest),
        "ratio_ours_to_floor": ratio(ours, floor_result),
        "target_ratio": TARGET_RATIO,
        "seconds": time.perf_counter() - started,
    }
    report["target_met"] = (report["ratio_ours_to_fastest_peer"] or 0) >= TARGET_RATIO

    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if args.json != "-":
        print()
        print_table(report, results)
    return 0


def print_table(report: dict[str, Any], results: list[Result]) -> None:
    m = report["machine"]
    print(
        f"flags_eval: {report['keys']:,} keys, best of {report['repeat']} rounds, GC off while timing; "
        f"{m['implementation']} {m['python']} on {m['cpu']} ({m['cores']} cores)"
    )
    print()
    print(f"{'engine':40} {'version':>9} {'evals/s':>12} {'µs/eval':>9} {'true':>7} {'ours/it':>8}")
    ours_rate = results[0].rate
    for r in results:
        if r.rate is None:
            print(f"{r.name:40} {r.version or '-':>9}  not measured: {r.error}")
            continue
        ratio = f"{ours_rate / r.rate:.2f}x" if ours_rate else "-"
        print(
            f"{r.name:40} {r.version or '-':>9} {r.rate:>12,.0f} {1e6 / r.rate:>9.2f} "
            f"{r.true_share:>7.1%} {ratio:>8}"
        )
    print()
    print(f"ours equals the floor on every key: {report['ours_equals_floor']}")
    if report["fastest_peer"]:
        print(
            f"ours / fastest peer ({report['fastest_peer']}): "
            f"{report['ratio_ours_to_fastest_peer']:.2f}x  (target >= {TARGET_RATIO:g}x: "
            f"{'met' if report['target_met'] else 'NOT met'})"
        )
        print(
            f"ours via OpenFeature / fastest peer: {report['ratio_openfeature_to_fastest_peer']:.2f}x"
        )
    if report["ratio_ours_to_floor"]:
        print(f"ours / floor: {report['ratio_ours_to_floor']:.2f}x")
    before, after = report["load_average_before"][0], report["load_average_after"][0]
    print(
        f"({report['seconds']:.0f} s; 1-minute load average {before:.2f} before, {after:.2f} after)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
