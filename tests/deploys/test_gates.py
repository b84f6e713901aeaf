"""The promotion gate: stage order and bake, tests for the exact digest, block windows and
break-glass, alarms during bake, manual approval; each blocker with its code and remedy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mechanisms.core.errors import InvalidInput
from mechanisms.deploys import approvals
from mechanisms.deploys.approvals import Principal, Target, Ticket
from mechanisms.deploys.calendar import BlockWindow, Calendar, OneOff, Scope
from mechanisms.deploys.gates import (
    AlarmTransition,
    ApprovalRule,
    Deployment,
    Pipeline,
    Promotion,
    Snapshot,
    Stage,
    StageApproval,
    SuiteResult,
    Version,
    evaluate,
)

NOW = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)  # a Wednesday
V2 = Version("checkout:2.0.0", "sha256:v2", author="erin")
ALICE = Principal("alice")
PIPELINE = Pipeline(
    "checkout",
    (
        Stage("beta", required_suites=("unit",), bake=timedelta(minutes=30)),
        Stage("gamma", required_suites=("integration",), bake=timedelta(hours=1)),
        Stage(
            "prod",
            required_suites=("integration", "smoke"),
            approval=ApprovalRule(frozenset({"leader", "release-manager"})),
        ),
    ),
)
FREEZE = BlockWindow(
    "freeze",
    Scope("acme"),
    OneOff(NOW - timedelta(hours=1), NOW + timedelta(hours=5)),
    "quarter close",
)


def scope(stage: str) -> Scope:
    return Scope("acme", "payments", "checkout", stage)


def window(stage: str, at: datetime = NOW, windows=()):
    return Calendar(list(windows)).gate_state(scope(stage), at)


def passing(digest: str = V2.digest) -> list[SuiteResult]:
    return [SuiteResult(s, digest, tests=12) for s in ("unit", "integration", "smoke")]


def ready_for_prod(**overrides) -> Snapshot:
    base = dict(
        pipeline=PIPELINE,
        window=window("prod"),
        deployments={
            "beta": Deployment("beta", V2.digest, NOW - timedelta(days=1)),
            "gamma": Deployment(
                "gamma", V2.digest, NOW - timedelta(hours=3), previous_good="sha256:v1"
            ),
        },
        test_results=passing(),
        approvals=[
            StageApproval(
                Principal("frank"),
                frozenset({"release-manager"}),
                Target("checkout", "prod", V2.digest),
                NOW - timedelta(minutes=5),
            )
        ],
    )
    base.update(overrides)
    return Snapshot(**base)


def ask(stage: str = "prod", at: datetime = NOW, **kw) -> Promotion:
    return Promotion(stage, kw.pop("version", V2), kw.pop("requester", ALICE), at, **kw)


def codes(decision) -> list[str]:
    return [b.code for b in decision.blockers]


def test_a_promotion_with_every_gate_green_is_allowed():
    decision = evaluate(ready_for_prod(), ask())
    assert decision.allowed and decision.exit_code == 0
    assert not decision.break_glass
    assert json.loads(json.dumps(decision.to_dict()))["allowed"] is True


def test_the_first_stage_needs_no_previous_stage():
    decision = evaluate(Snapshot(PIPELINE, window("beta"), test_results=passing()), ask("beta"))
    assert decision.allowed


def test_stages_go_in_order():
    snapshot = ready_for_prod(
        deployments={"beta": Deployment("beta", V2.digest, NOW - timedelta(days=1))}
    )
    decision = evaluate(snapshot, ask())
    assert codes(decision) == ["previous_stage_missing"]
    assert decision.exit_code == 1
    assert decision.blockers[0].clear == "promote sha256:v2 into gamma first"
    other = ready_for_prod(
        deployments={"gamma": Deployment("gamma", "sha256:v1", NOW - timedelta(days=1))}
    )
    assert evaluate(other, ask()).blockers[0].details["running"] == "sha256:v1"


def test_bake_time_in_the_previous_stage():
    snapshot = ready_for_prod(
        deployments={"gamma": Deployment("gamma", V2.digest, NOW - timedelta(minutes=20))}
    )
    blocker = evaluate(snapshot, ask()).blockers[0]
    assert blocker.code == "baking"
    assert blocker.details["baked_at"] == (NOW + timedelta(minutes=40)).isoformat()
    later = NOW + timedelta(minutes=40)
    assert evaluate(
        ready_for_prod(deployments=snapshot.deployments, window=window("prod", later)),
        ask(at=later),
    ).allowed


def test_an_alarm_during_bake_rolls_the_stage_back_and_blocks():
    deployed = NOW - timedelta(hours=3)
    alarms = {
        "gamma": [
            AlarmTransition("latency-p99", "OK", deployed - timedelta(days=2)),
            AlarmTransition("latency-p99", "ALARM", deployed + timedelta(minutes=42)),
            AlarmTransition("latency-p99", "OK", deployed + timedelta(minutes=50)),
        ]
    }
    decision = evaluate(ready_for_prod(alarms=alarms), ask())
    assert codes(decision) == ["bake_alarm"]
    assert decision.rollback is not None
    assert (
        decision.rollback.stage,
        decision.rollback.from_digest,
        decision.rollback.to_digest,
    ) == ("gamma", V2.digest, "sha256:v1")
    assert decision.rollback.alarm_at == deployed + timedelta(minutes=42)
    assert decision.to_dict()["rollback"]["to"] == "sha256:v1"


def test_an_alarm_already_firing_at_deploy_counts_and_one_after_the_bake_only_blocks():
    deployed = NOW - timedelta(hours=3)
    firing = {"gamma": [AlarmTransition("errors", "ALARM", deployed - timedelta(minutes=1))]}
    assert codes(evaluate(ready_for_prod(alarms=firing), ask())) == ["bake_alarm"]
    after_bake = {"gamma": [AlarmTransition("errors", "ALARM", deployed + timedelta(hours=2))]}
    decision = evaluate(ready_for_prod(alarms=after_bake), ask())
    assert codes(decision) == ["stage_alarm"]
    assert decision.rollback is None
    recovered = {
        "gamma": [*after_bake["gamma"], AlarmTransition("errors", "OK", NOW - timedelta(minutes=1))]
    }
    assert evaluate(ready_for_prod(alarms=recovered), ask()).allowed
    other_stage = {"beta": [AlarmTransition("errors", "ALARM", deployed + timedelta(minutes=5))]}
    assert evaluate(ready_for_prod(alarms=other_stage), ask()).allowed


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([SuiteResult("integration", V2.digest, 12)], ["tests_missing"]),
        (
            [SuiteResult("integration", V2.digest, 12), SuiteResult("smoke", "sha256:v1", 12)],
            ["tests_missing"],
        ),
        (
            [SuiteResult("integration", V2.digest, 12), SuiteResult("smoke", V2.digest, 0)],
            ["tests_empty"],
        ),
        (
            [
                SuiteResult("integration", V2.digest, 12),
                SuiteResult("smoke", V2.digest, 3, skipped=3),
            ],
            ["tests_empty"],
        ),
        (
            [
                SuiteResult("integration", V2.digest, 12, failures=1),
                SuiteResult("smoke", V2.digest, 4),
            ],
            ["tests_failed"],
        ),
        (
            [
                SuiteResult("integration", V2.digest, 12, errors=2),
                SuiteResult("smoke", V2.digest, 4, failures=1),
            ],
            ["tests_failed", "tests_failed"],
        ),
        # The latest upload for the digest counts: a fixed rerun clears an earlier failure.
        (
            [
                SuiteResult("integration", V2.digest, 12, failures=1),
                SuiteResult("integration", V2.digest, 12),
                SuiteResult("smoke", V2.digest, 4),
            ],
            [],
        ),
    ],
)
def test_required_suites_must_pass_for_this_exact_digest(results, expected):
    assert codes(evaluate(ready_for_prod(test_results=results), ask())) == expected


def test_a_block_window_blocks_with_its_reason_and_when_it_opens():
    decision = evaluate(ready_for_prod(window=window("prod", windows=[FREEZE])), ask())
    (blocker,) = decision.blockers
    assert blocker.code == "block_window"
    assert "quarter close" in blocker.message
    assert (NOW + timedelta(hours=5)).isoformat() in blocker.clear
    assert "break-glass" in blocker.clear
    assert decision.to_dict()["window"]["state"] == "BLOCKED"


def granted_request(
    target: Target, *, drill: bool = False, at: datetime = NOW
) -> approvals.Request:
    request = approvals.open_request(
        "bg-1",
        target,
        requester=ALICE,
        version_author="erin",
        org="acme",
        reason="checkout is down",
        ticket=Ticket("OPS-12", "SEV1"),
        at=at - timedelta(minutes=10),
        drill=drill,
    )
    request = approvals.approve(
        request, Principal("carol"), target, at - timedelta(minutes=5), {"carol"}
    )
    return approvals.approve(
        request, Principal("dave"), target, at - timedelta(minutes=4), {"carol"}
    )


def test_break_glass_lifts_only_the_window_and_only_for_its_exact_promotion():
    target = Target("checkout", "prod", V2.digest)
    grant = approvals.grant(granted_request(target), NOW, {"carol"})
    assert grant is not None
    blocked = window("prod", windows=[FREEZE])
    decision = evaluate(ready_for_prod(window=blocked, grant=grant), ask())
    assert decision.allowed and decision.break_glass
    # Tests still apply under break-glass; then the grant is not spent.
    failing = evaluate(ready_for_prod(window=blocked, grant=grant, test_results=[]), ask())
    assert codes(failing) == ["tests_missing", "tests_missing"] and not failing.break_glass
    # Another digest, stage or service: the grant does not apply.
    v3 = Version("checkout:3.0.0", "sha256:v3")
    other = ready_for_prod(
        window=blocked,
        grant=grant,
        test_results=passing("sha256:v3"),
        deployments={"gamma": Deployment("gamma", "sha256:v3", NOW - timedelta(hours=3))},
        approvals=[
            StageApproval(
                Principal("frank"),
                frozenset({"leader"}),
                Target("checkout", "prod", "sha256:v3"),
                NOW,
            )
        ],
    )
    assert codes(evaluate(other, ask(version=v3))) == ["block_window"]
    gamma = Snapshot(
        PIPELINE,
        window("gamma", windows=[FREEZE]),
        {"beta": Deployment("beta", V2.digest, NOW - timedelta(days=1))},
        passing(),
        grant=grant,
    )
    assert codes(evaluate(gamma, ask("gamma"))) == ["block_window"]
    # A drill grant never lets a real promotion through, and a real one does not serve a drill.
    drill_grant = approvals.grant(granted_request(target, drill=True), NOW, {"carol"})
    assert codes(evaluate(ready_for_prod(window=blocked, grant=drill_grant), ask())) == [
        "block_window"
    ]
    assert evaluate(ready_for_prod(window=blocked, grant=drill_grant), ask(drill=True)).break_glass
    # An expired grant does not apply.
    late = NOW + timedelta(hours=4)
    assert codes(
        evaluate(ready_for_prod(window=window("prod", late, [FREEZE]), grant=grant), ask(at=late))
    ) == ["block_window"]


def test_manual_approval_by_role_never_by_the_requester_or_a_bot():
    target = Target("checkout", "prod", V2.digest)
    cases = [
        ([], ["approval_required"]),
        ([StageApproval(ALICE, frozenset({"leader"}), target, NOW)], ["approval_required"]),
        (
            [StageApproval(Principal("ci", human=False), frozenset({"leader"}), target, NOW)],
            ["approval_required"],
        ),
        (
            [StageApproval(Principal("frank"), frozenset({"engineer"}), target, NOW)],
            ["approval_required"],
        ),
        (
            [
                StageApproval(
                    Principal("frank"),
                    frozenset({"leader"}),
                    Target("checkout", "prod", "sha256:v1"),
                    NOW,
                )
            ],
            ["approval_required"],
        ),
        (
            [
                StageApproval(
                    Principal("frank"), frozenset({"leader"}), target, NOW + timedelta(seconds=1)
                )
            ],
            ["approval_required"],
        ),
        ([StageApproval(Principal("frank"), frozenset({"leader"}), target, NOW)], []),
    ]
    for given, expected in cases:
        assert codes(evaluate(ready_for_prod(approvals=given), ask())) == expected
    blocker = evaluate(ready_for_prod(approvals=[]), ask()).blockers[0]
    assert "not the requester" in blocker.clear


def test_every_blocker_is_listed_at_once():
    snapshot = Snapshot(PIPELINE, window("prod", windows=[FREEZE]))
    decision = evaluate(snapshot, ask())
    assert codes(decision) == [
        "previous_stage_missing",
        "tests_missing",
        "tests_missing",
        "block_window",
        "approval_required",
    ]
    for blocker in decision.to_dict()["blockers"]:
        assert blocker["message"] and blocker["clear"]


def test_bad_pipelines_and_asks_are_refused():
    with pytest.raises(InvalidInput) as info:
        Pipeline("checkout", (Stage("beta"), Stage("prod"), Stage("beta")))
    assert info.value.code == "overlapping_stages"
    assert info.value.details["field"] == "stages[2].name"
    with pytest.raises(InvalidInput):
        Pipeline("checkout", ())
    with pytest.raises(InvalidInput):
        Pipeline("checkout", (Stage("beta", bake=timedelta(minutes=-1)),))
    with pytest.raises(InvalidInput):
        Pipeline("checkout", (Stage("beta", approval=ApprovalRule(frozenset(), 1)),))
    with pytest.raises(InvalidInput) as info:
        evaluate(ready_for_prod(), ask("canary"))
    assert info.value.code == "unknown_stage"
    with pytest.raises(InvalidInput) as info:
        evaluate(ready_for_prod(), ask(at=NOW + timedelta(seconds=1)))
    assert info.value.code == "stale_window"
