"""The promotion gate: may this version go into this stage now? A pure function over a snapshot.

All gates are re-checked at the instant of each promotion, from the snapshot the caller loads
at that instant: stage order and bake (the version must be deployed and baked in the stage
before), the stage's required test suites for this exact digest, the block windows (a
``GateState`` computed for this stage at this instant), alarms watched during the previous
stage's bake (an alarm in ALARM rolls that stage back and blocks), and a manual approval where
the stage asks for one. A break-glass grant lifts the block-window blocker only, and only for
the exact service, stage and digest it was granted for, while it is valid.

The answer lists every blocker with a stable code, a message and how to clear it; this is what
``mech deploy gate`` prints (exit 0 allowed, 1 blocked) and what ``--json`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mechanisms.core.errors import InvalidInput
from mechanisms.deploys.approvals import Grant, Principal, Target
from mechanisms.deploys.calendar import GateState, GateStatus

ALARM = "ALARM"


@dataclass(frozen=True)
class ApprovalRule:
    """``count`` distinct people holding one of ``roles`` must approve (never the requester)."""

    roles: frozenset[str]
    count: int = 1


@dataclass(frozen=True)
class Stage:
    name: str
    required_suites: tuple[str, ...] = ()
    bake: timedelta = timedelta(0)
    approval: ApprovalRule | None = None


@dataclass(frozen=True)
class Pipeline:
    service: str
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        validate_pipeline(self)

    def index(self, stage: str) -> int:
        for i, s in enumerate(self.stages):
            if s.name == stage:
                return i
        raise InvalidInput(
            f"{self.service} has no stage {stage!r} (stages: {', '.join(s.name for s in self.stages)})",
            code="unknown_stage",
            details={"field": "stage", "value": stage},
        )


def validate_pipeline(pipeline: Pipeline) -> None:
    """Refuse a pipeline whose stages cannot be ordered: none, or one name twice."""
    if not pipeline.stages:
        raise InvalidInput(
            "a pipeline needs at least one stage",
            code="invalid_pipeline",
            details={"field": "stages"},
        )
    seen: set[str] = set()
    for i, stage in enumerate(pipeline.stages):
        if not isinstance(stage.name, str) or not stage.name.strip() or "\x00" in stage.name:
            raise InvalidInput(
                "every stage needs a name",
                code="invalid_pipeline",
                details={"field": f"stages[{i}].name"},
            )
        if stage.name in seen:
            raise InvalidInput(
                f"stage {stage.name!r} appears twice: stages are an order, each once",
                code="overlapping_stages",
                details={"field": f"stages[{i}].name", "value": stage.name},
            )
        seen.add(stage.name)
        if stage.bake < timedelta(0):
            raise InvalidInput(
                "bake time cannot be negative",
                code="invalid_pipeline",
                details={"field": f"stages[{i}].bake"},
            )
        if len(set(stage.required_suites)) != len(stage.required_suites):
            raise InvalidInput(
                "a required suite is listed twice",
                code="invalid_pipeline",
                details={"field": f"stages[{i}].required_suites"},
            )
        if stage.approval is not None and (stage.approval.count < 1 or not stage.approval.roles):
            raise InvalidInput(
                "an approval rule needs at least one role and one approver",
                code="invalid_pipeline",
                details={"field": f"stages[{i}].approval"},
            )


@dataclass(frozen=True)
class Version:
    artifact: str
    digest: str
    author: str | None = None


@dataclass(frozen=True)
class Deployment:
    """The version a stage runs now, since when, and the last good one before it."""

    stage: str
    digest: str
    deployed_at: datetime
    previous_good: str | None = None


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    digest: str
    tests: int
    failures: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class AlarmTransition:
    alarm: str
    state: str
    at: datetime


@dataclass(frozen=True)
class StageApproval:
    approver: Principal
    roles: frozenset[str]
    target: Target
    at: datetime


@dataclass(frozen=True)
class Snapshot:
    """Everything the gate needs, loaded by the caller at the instant of the promotion."""

    pipeline: Pipeline
    window: GateState  # the calendar's answer for the target stage at the promotion's instant
    deployments: Mapping[str, Deployment] = field(default_factory=dict)
    test_results: Sequence[SuiteResult] = ()
    alarms: Mapping[str, Sequence[AlarmTransition]] = field(default_factory=dict)
    approvals: Sequence[StageApproval] = ()
    grant: Grant | None = None


@dataclass(frozen=True)
class Promotion:
    stage: str
    version: Version
    requester: Principal
    at: datetime
    drill: bool = False


@dataclass(frozen=True)
class Blocker:
    code: str
    message: str
    clear: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "clear": self.clear,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Rollback:
    stage: str
    from_digest: str
    to_digest: str | None
    alarm: str
    alarm_at: datetime


@dataclass(frozen=True)
class Decision:
    target: Target
    at: datetime
    blockers: tuple[Blocker, ...]
    window: GateState
    rollback: Rollback | None = None
    # True when a block window was lifted by the grant: the caller must spend the grant.
    break_glass: bool = False
    drill: bool = False

    @property
    def allowed(self) -> bool:
        return not self.blockers

    @property
    def exit_code(self) -> int:
        return 0 if self.allowed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "service": self.target.service,
            "stage": self.target.stage,
            "digest": self.target.digest,
            "at": self.at.isoformat(),
            "drill": self.drill,
            "break_glass": self.break_glass,
            "blockers": [b.to_dict() for b in self.blockers],
            "window": self.window.to_dict(),
            "rollback": None
            if self.rollback is None
            else {
                "stage": self.rollback.stage,
                "from": self.rollback.from_digest,
                "to": self.rollback.to_digest,
                "alarm": self.rollback.alarm,
                "alarm_at": self.rollback.alarm_at.isoformat(),
            },
        }


# ---------------------------------------------------------------------------------------------


def _first_alarm(
    transitions: Sequence[AlarmTransition], start: datetime, end: datetime
) -> AlarmTransition | None:
    """The first alarm in ALARM at any instant of [start, end] (already in ALARM at start counts)."""
    state_at_start: dict[str, AlarmTransition] = {}
    inside = []
    for t in sorted(transitions, key=lambda t: t.at):
        if t.at <= start:
            state_at_start[t.alarm] = t
        elif t.at <= end:
            inside.append(t)
    firing = [
        AlarmTransition(t.alarm, t.state, start)
        for t in state_at_start.values()
        if t.state == ALARM
    ]
    firing += [t for t in inside if t.state == ALARM]
    return min(firing, key=lambda t: (t.at, t.alarm), default=None)


def _previous_stage(
    snapshot: Snapshot, ask: Promotion, index: int
) -> tuple[list[Blocker], Rollback | None]:
    if index == 0:
        return [], None
    previous = snapshot.pipeline.stages[index - 1]
    deployment = snapshot.deployments.get(previous.name)
    digest = ask.version.digest
    if deployment is None or deployment.digest != digest:
        running = deployment.digest if deployment else "nothing"
        return [
            Blocker(
                "previous_stage_missing",
                f"{digest} is not deployed in {previous.name} (it runs {running}); stages go in order",
                f"promote {digest} into {previous.name} first",
                {"stage": previous.name, "running": deployment.digest if deployment else None},
            )
        ], None
    baked_at = deployment.deployed_at + previous.bake
    watched_until = min(ask.at, baked_at)
    transitions = snapshot.alarms.get(previous.name, ())
    fired = _first_alarm(transitions, deployment.deployed_at, watched_until)
    if fired is not None:
        rollback = Rollback(previous.name, digest, deployment.previous_good, fired.alarm, fired.at)
        target = deployment.previous_good or "the last good version (none is known)"
        return [
            Blocker(
                "bake_alarm",
                f"alarm {fired.alarm} went into ALARM at {fired.at.isoformat()} while {digest} baked in {previous.name}",
                f"{previous.name} rolls back to {target}; fix the cause and promote a new version",
                {
                    "stage": previous.name,
                    "alarm": fired.alarm,
                    "alarm_at": fired.at.isoformat(),
                    "rollback_to": deployment.previous_good,
                },
            )
        ], rollback
    if ask.at < baked_at:
        return [
            Blocker(
                "baking",
                f"{digest} is baking in {previous.name} until {baked_at.isoformat()}",
                f"wait until {baked_at.isoformat()} with {previous.name}'s alarms out of ALARM",
                {"stage": previous.name, "baked_at": baked_at.isoformat()},
            )
        ], None
    now_firing = _first_alarm(transitions, ask.at, ask.at)
    if now_firing is not None:
        return [
            Blocker(
                "stage_alarm",
                f"alarm {now_firing.alarm} of {previous.name} is in ALARM",
                f"wait until {now_firing.alarm} is back to OK",
                {"stage": previous.name, "alarm": now_firing.alarm},
            )
        ], None
    return [], None


def _tests(snapshot: Snapshot, ask: Promotion, stage: Stage) -> list[Blocker]:
    blockers = []
    digest = ask.version.digest
    for suite in stage.required_suites:
        results = [r for r in snapshot.test_results if r.suite == suite and r.digest == digest]
        if not results:
            blockers.append(
                Blocker(
                    "tests_missing",
                    f"no results of suite {suite} for {digest}",
                    f"run {suite} against {digest} and upload its JUnit XML (mech deploy tests upload)",
                    {"suite": suite},
                )
            )
            continue
        latest = results[-1]
        if latest.tests - latest.skipped <= 0:
            blockers.append(
                Blocker(
                    "tests_empty",
                    f"suite {suite} ran no tests for {digest}",
                    f"make {suite} run its tests and upload the results again",
                    {"suite": suite, "tests": latest.tests, "skipped": latest.skipped},
                )
            )
        elif latest.failures or latest.errors:
            blockers.append(
                Blocker(
                    "tests_failed",
                    f"suite {suite} has {latest.failures} failures and {latest.errors} errors for {digest}",
                    f"fix them and upload a passing run of {suite} for {digest}",
                    {"suite": suite, "failures": latest.failures, "errors": latest.errors},
                )
            )
    return blockers


def _window(snapshot: Snapshot, ask: Promotion, target: Target) -> tuple[list[Blocker], bool]:
    window = snapshot.window
    if window.status is GateStatus.OPEN:
        return [], False
    grant = snapshot.grant
    if (
        grant is not None
        and grant.covers(target, drill=ask.drill)
        and grant.granted_at <= ask.at < grant.expires_at
    ):
        return [], True
    reopens = (
        window.next_transition.isoformat()
        if window.next_transition
        else "not within the calendar's horizon"
    )
    reasons = "; ".join(f"{b.reason or b.window_id} ({b.scope})" for b in window.blockers)
    return [
        Blocker(
            "block_window",
            f"deploys to {target.service}/{target.stage} are blocked: {reasons}",
            f"wait until {reopens}, or request break-glass for this exact version "
            "(a SEV1/SEV2 ticket and two approvers, one of them a leader)",
            {
                "windows": [b.to_dict() for b in window.blockers],
                "opens_at": window.next_transition.isoformat() if window.next_transition else None,
            },
        )
    ], False


def _approval(snapshot: Snapshot, ask: Promotion, stage: Stage, target: Target) -> list[Blocker]:
    rule = stage.approval
    if rule is None:
        return []
    approvers = {
        a.approver.id
        for a in snapshot.approvals
        if a.approver.human
        and a.approver.id != ask.requester.id
        and a.target == target
        and a.roles & rule.roles
        and a.at <= ask.at
    }
    if len(approvers) >= rule.count:
        return []
    return [
        Blocker(
            "approval_required",
            f"{stage.name} needs {rule.count} approval(s) from {', '.join(sorted(rule.roles))}; it has {len(approvers)}",
            f"ask {rule.count - len(approvers)} more person(s) holding {' or '.join(sorted(rule.roles))} (not the requester) to approve {target.digest}",
            {"roles": sorted(rule.roles), "needed": rule.count, "have": sorted(approvers)},
        )
    ]


def evaluate(snapshot: Snapshot, ask: Promotion) -> Decision:
    """Every blocker on promoting ``ask.version`` into ``ask.stage`` at ``ask.at``."""
    if ask.at.tzinfo is None:
        raise InvalidInput(
            "the promotion instant must carry a time zone",
            code="naive_instant",
            details={"field": "at"},
        )
    if snapshot.window.at != ask.at:
        raise InvalidInput(
            "the block-window state was computed for another instant than the promotion's",
            code="stale_window",
            details={"field": "window"},
        )
    pipeline = snapshot.pipeline
    index = pipeline.index(ask.stage)
    stage = pipeline.stages[index]
    target = Target(pipeline.service, stage.name, ask.version.digest)
    order, rollback = _previous_stage(snapshot, ask, index)
    window, lifted = _window(snapshot, ask, target)
    blockers = (
        order + _tests(snapshot, ask, stage) + window + _approval(snapshot, ask, stage, target)
    )
    return Decision(
        target,
        ask.at,
        tuple(blockers),
        snapshot.window,
        rollback,
        break_glass=lifted and not blockers,
        drill=ask.drill,
    )
