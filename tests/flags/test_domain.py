"""Rule semantics of flag evaluation (the domain: no database)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mechanisms.flags.domain import (
    BUCKETS,
    DEFAULT,
    DISABLED,
    FLAG_NOT_FOUND,
    PREREQUISITE_FAILED,
    SPLIT,
    TARGETING_KEY_MISSING,
    TARGETING_MATCH,
    TYPE_MISMATCH,
    Clause,
    Engine,
    FlagConfig,
    FlagSpec,
    Holdout,
    LayerSlice,
    Prerequisite,
    Rollout,
    Rule,
    RuleError,
    RuleSet,
    Segment,
    Serve,
    SplitPart,
    check_config,
    prerequisite_cycle,
)

ON_OFF = {"on": True, "off": False}


def config(**kw) -> FlagConfig:
    kw.setdefault("variants", ON_OFF)
    kw.setdefault("off_variant", "off")
    kw.setdefault("fallthrough", Serve(variant="off"))
    return FlagConfig(**kw)


def engine(*specs: FlagSpec, segments=(), holdout=None) -> Engine:
    return Engine(
        RuleSet(
            environment="prod",
            flags={s.key: s for s in specs},
            segments={s.key: s for s in segments},
            holdout=holdout,
        )
    )


def flag(key="f", cfg=None, **kw) -> FlagSpec:
    kw.setdefault("type", "boolean")
    return FlagSpec(key=key, salt=key, version=kw.pop("version", 1), config=cfg or config(), **kw)


def rule(*clauses: Clause, variant="on", rid="r") -> Rule:
    return Rule(id=rid, clauses=list(clauses), serve=Serve(variant=variant))


def evaluate_clause(clause: Clause, ctx: dict) -> bool:
    e = engine(flag(cfg=config(rules=[rule(clause)])))
    return e.evaluate("f", ctx).variant == "on"


@pytest.mark.parametrize(
    "op, values, attribute_value, expected",
    [
        ("equals", ["DE"], "DE", True),
        ("equals", ["DE"], "de", False),
        ("in", ["DE", "FR"], "FR", True),
        ("in", [1, 2], 1, True),
        ("in", [1], True, False),  # booleans are not numbers
        ("in", [True], 1, False),
        ("in", [True], True, True),
        ("in", ["DE"], ["US", "DE"], True),  # a list matches if any element does
        ("contains", ["@acme."], "kim@acme.org", True),
        ("starts_with", ["beta-"], "beta-7", True),
        ("ends_with", [".acme.org"], "x.acme.org", True),
        ("ends_with", [".acme.org"], 5, False),
        ("matches", [r"^user-\d+$"], "user-42", True),
        ("matches", [r"^user-\d+$"], "user-x", False),
        ("lt", [10], 9.5, True),
        ("lte", [10], 10, True),
        ("gt", [10], 10, False),
        ("gte", [10], "11", False),  # a numeric comparison needs a number
        ("semver_lt", ["2.0.0"], "1.9.9", True),
        ("semver_lt", ["2.0.0"], "2.0.0-rc.1", True),  # pre-releases come first
        ("semver_gte", ["2.0.0"], "v2.1.0", True),
        ("semver_eq", ["2.0.0"], "not-a-version", False),
        ("before", ["2026-06-01T00:00:00Z"], "2026-05-31T23:59:59Z", True),
        ("after", ["2026-06-01T00:00:00Z"], 1780358400, True),
        ("after", ["2026-06-01"], "yesterday", False),
    ],
)
def test_operators(op, values, attribute_value, expected):
    clause = Clause(attribute="a", op=op, values=values)
    assert evaluate_clause(clause, {"targetingKey": "k", "a": attribute_value}) is expected


def test_negation_and_missing_attributes():
    negated = Clause(attribute="country", op="in", values=["DE"], negate=True)
    assert evaluate_clause(negated, {"country": "US"}) is True
    assert evaluate_clause(negated, {"country": "DE"}) is False
    # A missing attribute matches nothing, negated or not.
    assert evaluate_clause(negated, {}) is False
    assert evaluate_clause(Clause(attribute="country", op="in", values=["DE"]), {}) is False


def test_all_clauses_of_a_rule_must_match_and_the_first_rule_wins():
    cfg = config(
        variants={"a": "A", "b": "B", "c": "C"},
        off_variant="c",
        rules=[
            rule(
                Clause(attribute="x", op="equals", values=[1]),
                Clause(attribute="y", op="equals", values=[2]),
                variant="a",
                rid="both",
            ),
            rule(Clause(attribute="x", op="equals", values=[1]), variant="b", rid="x-only"),
        ],
        fallthrough=Serve(variant="c"),
    )
    e = engine(flag(cfg=cfg, type="string"))
    assert (
        e.evaluate("f", {"x": 1, "y": 2}).variant,
        e.evaluate("f", {"x": 1, "y": 2}).rule_id,
    ) == ("a", "both")
    assert e.evaluate("f", {"x": 1}).rule_id == "x-only"
    result = e.evaluate("f", {"x": 0})
    assert (result.variant, result.reason, result.rule_id) == ("c", DEFAULT, None)


def test_allow_lists_come_before_rules():
    cfg = config(
        targets={"on": ["vip-1"]},
        rules=[rule(Clause(attribute="country", op="in", values=["DE"]), variant="off")],
    )
    e = engine(flag(cfg=cfg))
    r = e.evaluate("f", {"targetingKey": "vip-1", "country": "DE"})
    assert (r.value, r.reason) == (True, TARGETING_MATCH)


def test_disabled_flags_serve_the_off_variant():
    e = engine(flag(cfg=config(enabled=False, fallthrough=Serve(variant="on"))))
    r = e.evaluate("f", {"targetingKey": "k"})
    assert (r.value, r.variant, r.reason) == (False, "off", DISABLED)


def test_segments_with_exclusion_winning_over_inclusion():
    beta = Segment(
        key="beta",
        included=["kim", "lee"],
        excluded=["lee"],
        rules=[[Clause(attribute="email", op="ends_with", values=["@acme.org"])]],
    )
    cfg = config(rules=[rule(Clause(attribute="segment", op="segment_match", values=["beta"]))])
    e = engine(flag(cfg=cfg), segments=[beta])
    assert e.evaluate("f", {"targetingKey": "kim"}).value is True
    assert e.evaluate("f", {"targetingKey": "lee", "email": "lee@acme.org"}).value is False
    assert e.evaluate("f", {"targetingKey": "max", "email": "max@acme.org"}).value is True
    assert e.evaluate("f", {"targetingKey": "max", "email": "max@else.org"}).value is False


def test_prerequisites():
    parent = flag("parent", cfg=config(targets={"on": ["kim"]}))
    child = flag(
        "child",
        cfg=config(
            prerequisites=[Prerequisite(flag="parent", variants=["on"])],
            fallthrough=Serve(variant="on"),
        ),
    )
    e = engine(parent, child)
    assert e.evaluate("child", {"targetingKey": "kim"}).value is True
    r = e.evaluate("child", {"targetingKey": "lee"})
    assert (r.value, r.reason) == (False, PREREQUISITE_FAILED)


def test_prerequisite_cycles_are_found():
    assert prerequisite_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert prerequisite_cycle({"a": ["b"], "b": [], "c": ["a"]}) is None


def test_splits_are_sticky_and_near_their_weights():
    def split_flag(on_percent: float) -> Engine:
        serve = Serve(
            split=[
                SplitPart(variant="on", percent=on_percent),
                SplitPart(variant="off", percent=100 - on_percent),
            ]
        )
        return engine(flag(cfg=config(fallthrough=serve)))

    keys = [f"user-{i}" for i in range(20_000)]
    ten, fifty = split_flag(10), split_flag(50)
    in_ten = {k for k in keys if ten.evaluate("f", {"targetingKey": k}).value}
    in_fifty = {k for k in keys if fifty.evaluate("f", {"targetingKey": k}).value}
    assert in_ten <= in_fifty  # growing the treatment group keeps everyone in it
    assert abs(len(in_ten) / len(keys) - 0.10) < 0.01
    assert abs(len(in_fifty) / len(keys) - 0.50) < 0.015
    assert ten.evaluate("f", {"targetingKey": "user-1"}).reason == SPLIT


def test_a_split_without_its_key_is_an_error_naming_the_attribute():
    serve = Serve(
        split=[SplitPart(variant="on", percent=50), SplitPart(variant="off", percent=50)],
        bucket_by="accountId",
    )
    e = engine(flag(cfg=config(fallthrough=serve)))
    r = e.evaluate("f", {"targetingKey": "k"})
    assert (r.error_code, r.value) == (TARGETING_KEY_MISSING, None)
    assert "accountId" in r.error_message
    assert e.evaluate("f", {"accountId": "acct-1"}).error_code is None


def test_unknown_flags_and_type_mismatches():
    e = engine(flag())
    assert e.evaluate("nope", {}).error_code == FLAG_NOT_FOUND
    assert e.evaluate("f", {}, expected_type="string").error_code == TYPE_MISMATCH
    assert e.evaluate("f", {}, expected_type="boolean").error_code is None


def test_rollouts_move_keys_from_the_previous_version_as_the_share_grows():
    old, new = config(fallthrough=Serve(variant="off")), config(fallthrough=Serve(variant="on"))

    def at(share: int) -> Engine:
        rollout = Rollout(
            deployment_id=1, buckets=share, salt="rollout/f/1", previous=old, previous_version=1
        )
        return engine(flag(cfg=new, version=2, rollout=rollout))

    keys = [f"u{i}" for i in range(10_000)]
    groups = [
        {k for k in keys if at(share).evaluate("f", {"targetingKey": k}).value}
        for share in (0, 20_000, 60_000, BUCKETS)
    ]
    assert groups[0] == set() and groups[-1] == set(keys)
    assert groups[0] <= groups[1] <= groups[2] <= groups[3]
    assert at(20_000).evaluate("f", {"targetingKey": "u1"}).metadata["version"] in (1, 2)
    assert at(20_000).evaluate("f", {}).value is False  # no key: the previous behaviour


def test_experiments_in_one_layer_never_share_a_key_and_the_holdout_sees_none():
    split = Serve(split=[SplitPart(variant="on", percent=50), SplitPart(variant="off", percent=50)])

    def experiment(key: str, start: int, end: int) -> FlagSpec:
        layer = LayerSlice(layer="pricing", salt="layer/pricing", start=start, end=end)
        return flag(key, cfg=config(fallthrough=split), kind="experiment", layer=layer)

    holdout = Holdout(salt="holdout/prod", buckets=5_000)
    e = engine(experiment("a", 0, 50_000), experiment("b", 50_000, BUCKETS), holdout=holdout)
    keys = [f"user-{i}" for i in range(20_000)]
    in_a = {k for k in keys if e.evaluate("a", {"targetingKey": k}).reason == SPLIT}
    in_b = {k for k in keys if e.evaluate("b", {"targetingKey": k}).reason == SPLIT}
    assert not in_a & in_b
    held = keys_outside = set(keys) - in_a - in_b
    assert abs(len(held) / len(keys) - 0.05) < 0.01
    assert all(
        e.evaluate("a", {"targetingKey": k}).reason == DEFAULT for k in list(keys_outside)[:100]
    )


def test_object_values_are_copies():
    cfg = config(
        variants={"a": {"limits": [1, 2]}, "b": {}}, off_variant="b", fallthrough=Serve(variant="a")
    )
    e = engine(flag(cfg=cfg, type="object"))
    first = e.evaluate("f", {})
    first.value["limits"].append(3)
    assert e.evaluate("f", {}).value == {"limits": [1, 2]}


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: config(off_variant="nope"), "unknown variant 'nope'"),
        (
            lambda: Serve(
                split=[SplitPart(variant="on", percent=60), SplitPart(variant="off", percent=30)]
            ),
            "sum to 100",
        ),
        (
            lambda: Serve(variant="on", split=[SplitPart(variant="on", percent=100)]),
            "either variant or split",
        ),
        (lambda: Clause(attribute="a", op="gt", values=["ten"]), "needs a number"),
        (
            lambda: Clause(attribute="a", op="matches", values=["("]),
            "not a valid regular expression",
        ),
        (lambda: Clause(attribute="a", op="semver_lt", values=["one"]), "not a semantic version"),
        (lambda: Clause(attribute="a", op="before", values=["soon"]), "ISO 8601"),
        (lambda: Clause(attribute="a", op="equals", values=[1, 2]), "exactly one value"),
        (lambda: Clause(attribute="a", op="teleport", values=[1]), "op"),
    ],
)
def test_malformed_rules_are_refused(build, message):
    with pytest.raises(ValidationError, match=message):
        build()


def test_values_must_fit_the_flag_type_and_its_schema():
    with pytest.raises(RuleError) as bad_type:
        check_config("boolean", config(variants={"on": "yes", "off": False}), set(), None)
    assert bad_type.value.path == "variants.on"
    schema = {
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 1}},
        "required": ["limit"],
    }
    cfg = config(
        variants={"small": {"limit": 0}, "big": {"limit": 10}},
        off_variant="big",
        fallthrough=Serve(variant="big"),
    )
    with pytest.raises(RuleError) as bad_schema:
        check_config("object", cfg, set(), schema)
    assert bad_schema.value.path == "variants.small/limit"
    assert "minimum" in bad_schema.value.message or "less than" in bad_schema.value.message
    with pytest.raises(RuleError, match="unknown segment 'ghosts'"):
        check_config(
            "boolean",
            config(rules=[rule(Clause(attribute="s", op="segment_match", values=["ghosts"]))]),
            set(),
            None,
        )
