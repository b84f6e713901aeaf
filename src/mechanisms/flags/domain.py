"""Flag evaluation: the rule model, its validation, and a compiler that turns a rule set
into plain Python closures so that evaluation in-process costs about a microsecond.

Pure: no database, no clock reads (dates in rules are compared with values from the
evaluation context), no I/O. The server's OFREP endpoints and the SDK both evaluate
with this module, so the two can never disagree.

Order of evaluation for one flag (first match wins):
1. the flag is disabled → ``off_variant``, reason DISABLED;
2. a rollout is in progress and the key is outside its share → the previous version;
3. a prerequisite flag does not serve one of the required variants → ``off_variant``,
   reason PREREQUISITE_FAILED;
4. experiments only: the key is in the holdout, or outside the flag's slice of its
   mutual-exclusion layer → ``off_variant``, reason DEFAULT;
5. allow lists (``targets``) → that variant, reason TARGETING_MATCH;
6. rules in order → their variant (TARGETING_MATCH) or split (SPLIT);
7. the fallthrough → its variant (DEFAULT) or split (SPLIT).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mechanisms.core import inputs
from mechanisms.core.patterns import any_matches, compile_pattern
from mechanisms.flags.bucketing import (
    BUCKETING_VERSION,
    BUCKETS,
    bucket,
    key_text,
    murmur3,
    percent_to_buckets,
)

FlagType = Literal["boolean", "string", "number", "object"]
FlagKind = Literal["release", "experiment", "operational", "permission", "kill_switch"]
TARGETING_KEY = "targetingKey"

# Reasons and error codes as OpenFeature and OFREP name them.
STATIC, DEFAULT, TARGETING_MATCH, SPLIT, DISABLED, ERROR = (
    "STATIC",
    "DEFAULT",
    "TARGETING_MATCH",
    "SPLIT",
    "DISABLED",
    "ERROR",
)
PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
FLAG_NOT_FOUND, TYPE_MISMATCH, TARGETING_KEY_MISSING, PARSE_ERROR, GENERAL = (
    "FLAG_NOT_FOUND",
    "TYPE_MISMATCH",
    "TARGETING_KEY_MISSING",
    "PARSE_ERROR",
    "GENERAL",
)

# OpenFeature's reasons; ours beyond them are reported as DEFAULT with the detail in metadata.
STANDARD_REASONS = frozenset(
    {STATIC, DEFAULT, TARGETING_MATCH, SPLIT, DISABLED, ERROR, "CACHED", "STALE", "UNKNOWN"}
)


def standard_reason(reason: str) -> str:
    return reason if reason in STANDARD_REASONS else DEFAULT


KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Key = Annotated[str, Field(pattern=KEY_PATTERN)]

Op = Literal[
    "equals",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "lt",
    "lte",
    "gt",
    "gte",
    "semver_eq",
    "semver_lt",
    "semver_lte",
    "semver_gt",
    "semver_gte",
    "before",
    "after",
    "segment_match",
]
SINGLE_VALUE_OPS = {
    "equals",
    "lt",
    "lte",
    "gt",
    "gte",
    "semver_eq",
    "semver_lt",
    "semver_lte",
    "semver_gt",
    "semver_gte",
    "before",
    "after",
}


class RuleError(ValueError):
    """A rule set that cannot be evaluated; ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the rule model -----------------------------------------------------------------


class Clause(Strict):
    attribute: str = Field(min_length=1, max_length=200)
    op: Op
    values: list[Any] = Field(min_length=1, max_length=10_000)
    negate: bool = False

    @model_validator(mode="after")
    def _values_fit_the_op(self) -> Clause:
        if self.op in SINGLE_VALUE_OPS and len(self.values) != 1:
            raise ValueError(f"op {self.op!r} takes exactly one value")
        if self.op in ("lt", "lte", "gt", "gte") and not _is_number(self.values[0]):
            raise ValueError(f"op {self.op!r} needs a number")
        if self.op.startswith("semver_") and _parse_semver(self.values[0]) is None:
            raise ValueError(f"{self.values[0]!r} is not a semantic version")
        if self.op in ("before", "after") and _parse_instant(self.values[0]) is None:
            raise ValueError(f"{self.values[0]!r} is not an ISO 8601 date-time or epoch seconds")
        if self.op in (
            "contains",
            "starts_with",
            "ends_with",
            "matches",
            "segment_match",
        ) and not all(isinstance(v, str) for v in self.values):
            raise ValueError(f"op {self.op!r} takes strings")
        if self.op == "matches":
            for pattern in self.values:
                compile_pattern(pattern)
        inputs.json_text(self.values)
        return self


class SplitPart(Strict):
    variant: str
    # Percent of keys, with up to three decimals (the bucket resolution).
    percent: float = Field(ge=0, le=100)


class Serve(Strict):
    """Serve one variant, or split keys across variants by a stable hash."""

    variant: str | None = None
    split: list[SplitPart] | None = Field(default=None, min_length=1, max_length=100)
    bucket_by: str = TARGETING_KEY

    @model_validator(mode="after")
    def _one_of(self) -> Serve:
        if (self.variant is None) == (self.split is None):
            raise ValueError("give either variant or split")
        if self.split is not None:
            total = sum(percent_to_buckets(p.percent) for p in self.split)
            if total != BUCKETS:
                shown = sum(p.percent for p in self.split)
                raise ValueError(f"split percentages must sum to 100 (they sum to {shown:g})")
        return self

    def variants(self) -> list[str]:
        return [self.variant] if self.variant is not None else [p.variant for p in self.split or []]


class Rule(Strict):
    id: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=500)
    # All clauses must match (AND); an empty list matches everyone.
    clauses: list[Clause] = Field(default_factory=list, max_length=100)
    serve: Serve


class Prerequisite(Strict):
    flag: Key
    # The prerequisite flag must serve one of these variants.
    variants: list[str] = Field(min_length=1)


# A variant's value travels inside the rule set an SDK downloads, a few levels below its top.
MAX_VARIANT_VALUE_DEPTH = 32
MAX_VARIANT_NAME_LENGTH = 64


class FlagConfig(Strict):
    """One flag's behaviour in one environment: what a version holds."""

    variants: dict[str, Any] = Field(min_length=1, max_length=100)
    enabled: bool = True
    off_variant: str
    targets: dict[str, list[str]] = Field(default_factory=dict)
    prerequisites: list[Prerequisite] = Field(default_factory=list, max_length=20)
    rules: list[Rule] = Field(default_factory=list, max_length=500)
    fallthrough: Serve

    @model_validator(mode="after")
    def _variants_exist(self) -> FlagConfig:
        for name, value in self.variants.items():
            try:
                inputs.key(name, MAX_VARIANT_NAME_LENGTH)
                inputs.json_value(value, MAX_VARIANT_VALUE_DEPTH)
            except ValueError as exc:
                raise ValueError(f"variants.{name!r}: {exc}") from None
        known = set(self.variants)

        def check(path: str, name: str) -> None:
            if name not in known:
                raise ValueError(
                    f"{path}: unknown variant {name!r} (variants: {', '.join(sorted(known))})"
                )

        check("off_variant", self.off_variant)
        for name in self.targets:
            check(f"targets.{name}", name)
        for i, rule in enumerate(self.rules):
            for name in rule.serve.variants():
                check(f"rules.{i}.serve", name)
        for name in self.fallthrough.variants():
            check("fallthrough", name)
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rules: rule ids must be unique")
        return self


class Segment(Strict):
    """A reusable audience: included keys, excluded keys, and rules (any rule matches)."""

    key: Key
    included: list[str] = Field(default_factory=list, max_length=100_000)
    excluded: list[str] = Field(default_factory=list, max_length=100_000)
    rules: list[list[Clause]] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _keys_are_text(self) -> Segment:
        inputs.json_text([self.included, self.excluded])
        return self


def check_value_type(flag_type: str, value: Any) -> bool:
    if flag_type == "boolean":
        return isinstance(value, bool)
    if flag_type == "string":
        return isinstance(value, str)
    if flag_type == "number":
        return _is_number(value) and math.isfinite(value)
    return isinstance(value, dict)


# --- the rule set an SDK downloads --------------------------------------------------


class Rollout(Strict):
    """A gradual rollout in progress: keys whose rollout bucket is below ``buckets`` get
    the new configuration, everyone else the previous one."""

    deployment_id: int
    buckets: int = Field(ge=0, le=BUCKETS)
    salt: str
    previous: FlagConfig
    previous_version: int


class LayerSlice(Strict):
    """This flag's share of a mutual-exclusion layer: keys whose layer bucket falls in
    [start, end) are in the experiment."""

    layer: str
    salt: str
    start: int = Field(ge=0, le=BUCKETS)
    end: int = Field(ge=0, le=BUCKETS)


class Holdout(Strict):
    salt: str
    buckets: int = Field(ge=0, le=BUCKETS)


class FlagSpec(Strict):
    key: Key
    type: FlagType
    kind: FlagKind = "release"
    salt: str
    version: int
    config: FlagConfig
    rollout: Rollout | None = None
    layer: LayerSlice | None = None
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class RuleSet(Strict):
    bucketing_version: int = BUCKETING_VERSION
    environment: str
    flags: dict[str, FlagSpec] = Field(default_factory=dict)
    segments: dict[str, Segment] = Field(default_factory=dict)
    holdout: Holdout | None = None


# --- results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    key: str
    value: Any
    variant: str | None
    reason: str
    error_code: str | None = None
    error_message: str | None = None
    rule_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None


def not_found(key: str) -> Evaluation:
    return Evaluation(key, None, None, ERROR, FLAG_NOT_FOUND, f"flag {key!r} was not found")


# --- compiling ----------------------------------------------------------------------

Context = Mapping[str, Any]
Test = Callable[[Context], bool]
# A compiled flag: context → evaluation. ``depth`` guards prerequisite recursion.
Evaluator = Callable[[Context, int], Evaluation]
MAX_PREREQUISITE_DEPTH = 10


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_semver(value: Any) -> semver.Version | None:
    if not isinstance(value, str):
        return None
    try:
        return semver.Version.parse(value.removeprefix("v"))
    except ValueError:
        return None


def _parse_instant(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string (no offset means UTC)."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def _value_test(op: str, values: list[Any]) -> Callable[[Any], bool]:
    """A test of one attribute value (not a list) against a clause's values."""
    if op in ("equals", "in"):
        # bool is an int in Python: keep True apart from 1.
        bools = frozenset(v for v in values if isinstance(v, bool))
        others = frozenset(
            v for v in values if not isinstance(v, bool) and isinstance(v, str | int | float)
        )

        def member(v: Any) -> bool:
            try:
                return (v in bools) if v.__class__ is bool else (v in others)
            except TypeError:  # an unhashable value (an object) is in no list
                return False

        return member
    if op == "contains":
        return lambda v: isinstance(v, str) and any(s in v for s in values)
    if op == "starts_with":
        prefixes = tuple(values)
        return lambda v: isinstance(v, str) and v.startswith(prefixes)
    if op == "ends_with":
        suffixes = tuple(values)
        return lambda v: isinstance(v, str) and v.endswith(suffixes)
    if op == "matches":
        matches = any_matches(values)
        return lambda v: isinstance(v, str) and matches(v)
    if op in NUMERIC_OPS:
        bound, compare = values[0], NUMERIC_OPS[op]
        return lambda v: _is_number(v) and compare(v, bound)
    if op.startswith("semver_"):
        bound_version = _parse_semver(values[0])
        check = {
            "semver_eq": lambda c: c == 0,
            "semver_lt": lambda c: c < 0,
            "semver_lte": lambda c: c <= 0,
            "semver_gt": lambda c: c > 0,
            "semver_gte": lambda c: c >= 0,
        }[op]

        def semver_test(v: Any) -> bool:
            parsed = _parse_semver(v)
            return parsed is not None and check(parsed.compare(bound_version))

        return semver_test
    if op in ("before", "after"):
        instant = _parse_instant(values[0])
        assert instant is not None

        def date_test(v: Any) -> bool:
            when = _parse_instant(v)
            if when is None:
                return False
            return when < instant if op == "before" else when > instant

        return date_test
    raise RuleError("op", f"unknown op {op!r}")


NUMERIC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _attribute_name(name: str) -> str:
    return TARGETING_KEY if name in ("key", TARGETING_KEY) else name


def _clause_test(clause: Clause, segments: Mapping[str, Test]) -> Test:
    """One clause as a test of the context. A missing attribute never matches, negated or
    not (a rule about "country" says nothing about a context without one); a list
    attribute matches when any of its elements does.

    The common operators get a closure of one frame each: evaluation cost is mostly the
    number of Python calls, and a rule set is compiled once and evaluated millions of times."""
    if clause.op == "segment_match":
        unknown = [s for s in clause.values if s not in segments]
        if unknown:
            raise RuleError("clauses.values", f"unknown segment {unknown[0]!r}")
        tests = [segments[s] for s in clause.values]

        def in_segment(ctx: Context) -> bool:
            return any(t(ctx) for t in tests)

        return (lambda ctx: not in_segment(ctx)) if clause.negate else in_segment

    attribute, negate = _attribute_name(clause.attribute), clause.negate
    one = _value_test(clause.op, clause.values)

    if clause.op in ("equals", "in") and not any(isinstance(v, bool) for v in clause.values):
        others = frozenset(v for v in clause.values if isinstance(v, str | int | float))

        def membership(ctx: Context) -> bool:
            v = ctx.get(attribute)
            cls = v.__class__
            if cls is str or cls is int or cls is float:
                return (v in others) != negate
            if v is None:
                return False
            if cls is list:
                return any(one(x) for x in v if x is not None) != negate
            return one(v) != negate

        return membership

    if clause.op in NUMERIC_OPS:
        bound, compare = clause.values[0], NUMERIC_OPS[clause.op]

        def numeric(ctx: Context) -> bool:
            v = ctx.get(attribute)
            cls = v.__class__
            if cls is int or cls is float:
                return compare(v, bound) != negate
            if v is None:
                return False
            if cls is list:
                return any(one(x) for x in v if x is not None) != negate
            return one(v) != negate

        return numeric

    def clause_test(ctx: Context) -> bool:
        v = ctx.get(attribute)
        if v is None:
            return False
        if v.__class__ is list:
            return any(one(x) for x in v if x is not None) != negate
        return one(v) != negate

    return clause_test


def _all(tests: list[Test]) -> Test:
    if not tests:
        return lambda ctx: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda ctx: a(ctx) and b(ctx)
    return lambda ctx: all(t(ctx) for t in tests)


def compile_segment(segment: Segment, segments: Mapping[str, Test]) -> Test:
    included, excluded = frozenset(segment.included), frozenset(segment.excluded)
    rule_tests = [_all([_clause_test(c, segments) for c in rule]) for rule in segment.rules]

    def in_segment(ctx: Context) -> bool:
        key = key_text(ctx.get(TARGETING_KEY))
        if key in excluded:
            return False
        if key in included:
            return True
        return any(t(ctx) for t in rule_tests)

    return in_segment


class _Outcomes:
    """Every evaluation a flag can produce, built once: evaluating returns a shared,
    immutable object instead of allocating one per call."""

    def __init__(self, spec: FlagSpec, config: FlagConfig, version: int) -> None:
        self.key = spec.key
        self.values = config.variants
        self.metadata = {**spec.metadata, "version": version, "kind": spec.kind}
        self._cache: dict[tuple[str, str, str | None], Evaluation] = {}

    def get(self, variant: str, reason: str, rule_id: str | None = None) -> Evaluation:
        cache_key = (variant, reason, rule_id)
        found = self._cache.get(cache_key)
        if found is None:
            found = Evaluation(
                self.key,
                self.values[variant],
                variant,
                reason,
                rule_id=rule_id,
                metadata=self.metadata,
            )
            self._cache[cache_key] = found
        return found

    def error(self, code: str, message: str) -> Evaluation:
        return Evaluation(self.key, None, None, ERROR, code, message, metadata=self.metadata)


Split = Callable[[Context], Evaluation]


def _split(serve: Serve, outcomes: _Outcomes, salt: str, rule_id: str | None) -> Split:
    """A percentage split: variants own bucket ranges in the order listed (bucketing v1)."""
    bounds: list[tuple[int, Evaluation]] = []
    upper = 0
    for part in serve.split or []:
        upper += percent_to_buckets(part.percent)
        bounds.append((upper, outcomes.get(part.variant, SPLIT, rule_id)))
    by, prefix = serve.bucket_by, salt + "/"
    missing = outcomes.error(
        TARGETING_KEY_MISSING, f"the split needs the {by!r} attribute in the evaluation context"
    )
    last = bounds[-1][1]

    if len(bounds) == 2:
        (first_upper, first), (_, second) = bounds

        def two_way(ctx: Context) -> Evaluation:
            key = ctx.get(by)
            if key is None:
                return missing
            if key.__class__ is not str:
                key = key_text(key)
            return first if murmur3(prefix + key, 0, False) % BUCKETS < first_upper else second

        return two_way

    def split(ctx: Context) -> Evaluation:
        key = ctx.get(by)
        if key is None:
            return missing
        b = murmur3(prefix + key_text(key), 0, False) % BUCKETS
        for bound, outcome in bounds:
            if b < bound:
                return outcome
        return last

    return split


def _serve(
    serve: Serve, outcomes: _Outcomes, salt: str, reason: str, rule_id: str | None
) -> tuple[Evaluation | None, Split | None]:
    """(the fixed outcome, None) for a variant; (None, the split) for a split."""
    if serve.variant is not None:
        return outcomes.get(serve.variant, reason, rule_id), None
    return None, _split(serve, outcomes, salt, rule_id)


def _compile_config(
    spec: FlagSpec,
    config: FlagConfig,
    version: int,
    segments: Mapping[str, Test],
    flags: Mapping[str, Evaluator],
    holdout: Holdout | None,
) -> Evaluator:
    outcomes = _Outcomes(spec, config, version)
    off = outcomes.get(config.off_variant, DISABLED)
    if not config.enabled:
        return lambda ctx, depth: off

    gates: list[Evaluator] = []
    prerequisite_failed = outcomes.get(config.off_variant, PREREQUISITE_FAILED)
    for prerequisite in config.prerequisites:
        gates.append(_prerequisite_step(prerequisite, flags, prerequisite_failed))
    if spec.kind == "experiment":
        gate = _experiment_gate(spec, holdout, outcomes.get(config.off_variant, DEFAULT))
        if gate is not None:
            gates.append(gate)
    allow = {
        key: outcomes.get(v, TARGETING_MATCH) for v, keys in config.targets.items() for key in keys
    }
    rules = [
        (
            _all([_clause_test(c, segments) for c in rule.clauses]),
            *_serve(rule.serve, outcomes, spec.salt, TARGETING_MATCH, rule.id),
        )
        for rule in config.rules
    ]
    fall_fixed, fall_split = _serve(config.fallthrough, outcomes, spec.salt, DEFAULT, None)

    def evaluate(ctx: Context, depth: int) -> Evaluation:
        for gate in gates:
            result = gate(ctx, depth)
            if result is not None:
                return result
        if allow:
            result = allow.get(key_text(ctx.get(TARGETING_KEY)))
            if result is not None:
                return result
        for test, fixed, split in rules:
            if test(ctx):
                return fixed if split is None else split(ctx)
        return fall_fixed if fall_split is None else fall_split(ctx)

    return evaluate


def _prerequisite_step(
    prerequisite: Prerequisite, flags: Mapping[str, Evaluator], failed: Evaluation
) -> Evaluator:
    wanted = frozenset(prerequisite.variants)
    name = prerequisite.flag

    def step(ctx: Context, depth: int) -> Evaluation | None:
        evaluator = flags.get(name)
        if evaluator is None or depth >= MAX_PREREQUISITE_DEPTH:
            return failed
        result = evaluator(ctx, depth + 1)
        return None if result.variant in wanted else failed

    return step  # type: ignore[return-value]


def _experiment_gate(
    spec: FlagSpec, holdout: Holdout | None, outside: Evaluation
) -> Evaluator | None:
    layer = spec.layer
    if layer is None and (holdout is None or holdout.buckets == 0):
        return None

    def gate(ctx: Context, depth: int) -> Evaluation | None:
        key = ctx.get(TARGETING_KEY)
        if key is None:
            return None  # the split below reports the missing key
        key = key_text(key)
        if holdout is not None and bucket(holdout.salt, key) < holdout.buckets:
            return outside
        if layer is not None and not layer.start <= bucket(layer.salt, key) < layer.end:
            return outside
        return None

    return gate  # type: ignore[return-value]


def _with_rollout(spec: FlagSpec, current: Evaluator, previous: Evaluator) -> Evaluator:
    rollout = spec.rollout
    assert rollout is not None
    share, prefix = rollout.buckets, rollout.salt + "/"

    def rolling(ctx: Context, depth: int) -> Evaluation:
        key = ctx.get(TARGETING_KEY)
        # Without a key nobody can say which group the caller is in: keep the old behaviour.
        if key is None:
            return previous(ctx, depth)
        if murmur3(prefix + key_text(key), 0, False) % BUCKETS < share:
            return current(ctx, depth)
        return previous(ctx, depth)

    return rolling


class Engine:
    """A compiled rule set. Build one per rule-set version; evaluate many times."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.environment = ruleset.environment
        segment_tests: dict[str, Test] = {}
        for key, segment in ruleset.segments.items():
            segment_tests[key] = compile_segment(segment, segment_tests)
        evaluators: dict[str, Evaluator] = {}
        self._entries: dict[str, tuple[Evaluator, str]] = {}
        for key, spec in ruleset.flags.items():
            current = _compile_config(
                spec, spec.config, spec.version, segment_tests, evaluators, ruleset.holdout
            )
            if spec.rollout is not None and spec.rollout.buckets < BUCKETS:
                previous = _compile_config(
                    spec,
                    spec.rollout.previous,
                    spec.rollout.previous_version,
                    segment_tests,
                    evaluators,
                    ruleset.holdout,
                )
                current = _with_rollout(spec, current, previous)
            evaluators[key] = current
            self._entries[key] = (current, spec.type)

    def flag_keys(self) -> list[str]:
        return list(self._entries)

    def flag_type(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return entry[1] if entry else None

    def evaluate(self, key: str, context: Context, expected_type: str | None = None) -> Evaluation:
        entry = self._entries.get(key)
        if entry is None:
            return not_found(key)
        evaluator, flag_type = entry
        if expected_type is not None and flag_type != expected_type:
            return Evaluation(
                key,
                None,
                None,
                ERROR,
                TYPE_MISMATCH,
                f"flag {key!r} is a {flag_type} flag, not {expected_type}",
            )
        result = evaluator(context, 0)
        if flag_type == "object" and result.value is not None:
            # Object values are shared between calls: hand out a copy the caller may change.
            return dataclasses.replace(result, value=copy.deepcopy(result.value))
        return result

    def value(self, key: str, context: Context, expected_type: str, default: Any) -> Any:
        """Just the value, or ``default`` on any error: the hot path of the SDK's typed calls."""
        entry = self._entries.get(key)
        if entry is None or entry[1] != expected_type:
            return default
        result = entry[0](context, 0)
        if result.error_code is not None:
            return default
        return copy.deepcopy(result.value) if expected_type == "object" else result.value

    def evaluate_all(self, context: Context) -> list[Evaluation]:
        return [self.evaluate(key, context) for key in self._entries]


# --- whole-rule-set checks the service runs before storing a version ----------------


def prerequisite_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """A cycle in the prerequisite graph, as the list of flags around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in edges:
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def check_config(
    flag_type: str, config: FlagConfig, segment_keys: set[str], json_schema: dict | None
) -> None:
    """Refuse a configuration whose values do not fit the flag, naming the field."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json_schema) if json_schema else None
    for name, value in config.variants.items():
        if not check_value_type(flag_type, value):
            raise RuleError(f"variants.{name}", f"a {flag_type} flag cannot serve {value!r}")
        if validator is not None:
            error = next(
                iter(sorted(validator.iter_errors(value), key=lambda e: list(e.path))), None
            )
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                raise RuleError(
                    f"variants.{name}" + (f"/{where}" if where else ""),
                    f"does not match the flag's JSON Schema: {error.message}",
                )
    clauses = [
        (f"rules.{i}.clauses.{j}", c)
        for i, r in enumerate(config.rules)
        for j, c in enumerate(r.clauses)
    ]
    for path, clause in clauses:
        if clause.op == "segment_match":
            for key in clause.values:
                if key not in segment_keys:
                    raise RuleError(f"{path}.values", f"unknown segment {key!r}")
