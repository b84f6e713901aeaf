"""Break-glass under the two-person rule: examples of each rule, then the issue's invariants
over random sequences of requests, approvals, denials, revocations, role changes, clock moves
and version changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, MechanismsError
from mechanisms.deploys import approvals
from mechanisms.deploys.approvals import Principal, Status, Target, Ticket
from mechanisms.deploys.calendar import BlockWindow, Calendar, OneOff, Scope
from mechanisms.deploys.gates import (
    Deployment,
    Pipeline,
    Promotion,
    Snapshot,
    Stage,
    SuiteResult,
    Version,
    evaluate,
)

T0 = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)
TARGET = Target("checkout", "prod", "sha256:v2")
ALICE, BOB, CAROL, DAVE, ERIN = (Principal(n) for n in ("alice", "bob", "carol", "dave", "erin"))
BOT = Principal("ci-bot", human=False)
LEADERS = frozenset({"carol", "dave"})


def new(at: datetime = T0, **kw) -> approvals.Request:
    fields = dict(
        requester=ALICE,
        version_author="bob",
        org="acme",
        reason="checkout returns 500s",
        ticket=Ticket("OPS-12", "SEV1"),
        at=at,
    )
    fields.update(kw)
    return approvals.open_request("bg-1", TARGET, **fields)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_two_approvers_one_a_leader_grant_it():
    request = approvals.approve(new(), CAROL, TARGET, at(5), LEADERS)
    assert approvals.status(request, at(5), LEADERS) is Status.PENDING
    request = approvals.approve(request, ERIN, TARGET, at(7), LEADERS)
    assert approvals.status(request, at(7), LEADERS) is Status.GRANTED
    grant = approvals.grant(request, at(7), LEADERS)
    assert grant.approvers == ("carol", "erin") and grant.leaders == ("carol",)
    assert grant.granted_at == at(7) and grant.expires_at == at(7 + 240)
    view = approvals.describe(request, at(7), LEADERS)
    assert view["status"] == "granted" and view["approvals_needed"] == 0 and view["leader_approved"]


def test_a_leader_acting_with_a_credential_scoped_below_leader_neither_counts_nor_denies():
    carol_as_engineer = Principal("carol", leader_scope=False)
    request = approvals.approve(new(), carol_as_engineer, TARGET, at(1), LEADERS)
    request = approvals.approve(request, ERIN, TARGET, at(2), LEADERS)
    assert approvals.status(request, at(2), LEADERS) is Status.PENDING
    assert not approvals.describe(request, at(2), LEADERS)["leader_approved"]
    with pytest.raises(Forbidden) as refused:
        approvals.deny(request, carol_as_engineer, at(3), LEADERS)
    assert "scoped below leader" in str(refused.value)
    request = approvals.approve(request, DAVE, TARGET, at(4), LEADERS)
    assert approvals.grant(request, at(4), LEADERS).leaders == ("dave",)


def test_two_approvers_without_a_leader_are_not_enough():
    request = approvals.approve(new(), ERIN, TARGET, at(1), LEADERS)
    request = approvals.approve(request, Principal("frank"), TARGET, at(2), LEADERS)
    assert approvals.status(request, at(2), LEADERS) is Status.PENDING
    request = approvals.approve(request, DAVE, TARGET, at(3), LEADERS)
    assert approvals.grant(request, at(3), LEADERS).granted_at == at(3)


def test_each_approver_is_told_what_their_approval_does_for_the_rule():
    carol_as_engineer = Principal("carol", leader_scope=False)
    request = approvals.approve(new(), ERIN, TARGET, at(1), LEADERS)
    assert (
        "a leader of the owning organisation must approve"
        in (approvals.standing(request, "erin", LEADERS)["why"])
    )
    request = approvals.approve(request, carol_as_engineer, TARGET, at(2), LEADERS)
    scoped = approvals.standing(request, "carol", LEADERS)
    assert (scoped["counts"], scoped["as_leader"]) == (True, False)
    assert "scoped below leader" in scoped["why"]
    request = approvals.approve(request, DAVE, TARGET, at(3), LEADERS)
    assert approvals.standing(request, "dave", LEADERS) == {
        "counts": True,
        "as_leader": True,
        "why": None,
    }
    assert approvals.standing(request, "erin", LEADERS)["why"] is None
    assert approvals.standing(request, "frank", LEADERS) is None


def test_a_request_that_expired_ungranted_stays_expired_when_a_leader_appears_later():
    request = approvals.approve(new(), ERIN, TARGET, at(1), LEADERS)
    request = approvals.approve(request, Principal("frank"), TARGET, at(2), LEADERS)
    promoted = LEADERS | {"frank"}
    # Frank becomes a leader after the hour is up: the approvals came in time, but the rule
    # was not met in time, so no grant may appear.
    assert approvals.status(request, at(61), promoted) is Status.EXPIRED
    assert approvals.grant(request, at(61), promoted) is None
    # Before the hour is up the same roster change does grant it.
    assert approvals.status(request, at(59), promoted) is Status.GRANTED


@pytest.mark.parametrize(
    ("approver", "code", "error"),
    [
        (ALICE, "self_approval", Forbidden),
        (BOB, "author_approval", Forbidden),
        (BOT, "not_human", Forbidden),
    ],
)
def test_requester_author_and_bots_cannot_approve(approver, code, error):
    with pytest.raises(error) as info:
        approvals.approve(new(), approver, TARGET, at(1), LEADERS | {approver.id})
    assert info.value.code == code


def test_an_approval_never_carries_over_to_another_promotion():
    for other in (
        Target("checkout", "prod", "sha256:v3"),
        Target("checkout", "gamma", "sha256:v2"),
        Target("search", "prod", "sha256:v2"),
    ):
        with pytest.raises(Conflict) as info:
            approvals.approve(new(), CAROL, other, at(1), LEADERS)
        assert info.value.code == "wrong_target"
    request = approvals.approve(
        approvals.approve(new(), CAROL, TARGET, at(1), LEADERS), ERIN, TARGET, at(2), LEADERS
    )
    for other in (
        Target("checkout", "prod", "sha256:v3"),
        Target("checkout", "gamma", "sha256:v2"),
    ):
        with pytest.raises(Conflict):
            approvals.use(request, other, at(3), LEADERS)


def test_one_person_approving_twice_counts_once():
    request = approvals.approve(new(), CAROL, TARGET, at(1), LEADERS)
    with pytest.raises(Conflict) as info:
        approvals.approve(request, CAROL, TARGET, at(2), LEADERS)
    assert info.value.code == "already_approved"


def test_a_revoked_approval_stops_counting_and_the_grant_falls():
    request = approvals.approve(
        approvals.approve(new(), CAROL, TARGET, at(1), LEADERS), ERIN, TARGET, at(2), LEADERS
    )
    assert approvals.grant(request, at(3), LEADERS)
    request = approvals.revoke(request, CAROL, at(4), LEADERS)
    assert approvals.status(request, at(4), LEADERS) is Status.PENDING
    with pytest.raises(Conflict):
        approvals.revoke(request, CAROL, at(5), LEADERS)
    request = approvals.approve(request, DAVE, TARGET, at(6), LEADERS)
    assert approvals.grant(request, at(6), LEADERS).approvers == ("erin", "dave")


def test_a_leader_who_loses_the_role_no_longer_carries_the_rule():
    request = approvals.approve(
        approvals.approve(new(), CAROL, TARGET, at(1), LEADERS), ERIN, TARGET, at(2), LEADERS
    )
    assert approvals.grant(request, at(3), {"dave"}) is None
    assert approvals.grant(request, at(3), {"carol"}) is not None


def test_any_leader_can_veto_and_others_cannot():
    request = approvals.approve(new(), CAROL, TARGET, at(1), LEADERS)
    with pytest.raises(Forbidden) as info:
        approvals.deny(request, ERIN, at(2), LEADERS)
    assert info.value.code == "not_a_leader"
    denied = approvals.deny(request, DAVE, at(2), LEADERS, "not a customer-facing fix")
    assert approvals.status(denied, at(2), LEADERS) is Status.DENIED
    with pytest.raises(Conflict) as info:
        approvals.approve(denied, ERIN, TARGET, at(3), LEADERS)
    assert info.value.code == "request_closed"


def test_the_request_expires_unapproved_and_the_grant_expires_unused():
    request = approvals.approve(new(), CAROL, TARGET, at(30), LEADERS)
    assert approvals.status(request, at(60), LEADERS) is Status.EXPIRED
    with pytest.raises(Conflict):
        approvals.approve(request, ERIN, TARGET, at(60), LEADERS)
    request = approvals.approve(request, ERIN, TARGET, at(59), LEADERS)
    assert approvals.status(request, at(59 + 239), LEADERS) is Status.GRANTED
    assert approvals.status(request, at(59 + 240), LEADERS) is Status.GRANT_EXPIRED
    with pytest.raises(Conflict) as info:
        approvals.use(request, TARGET, at(59 + 240), LEADERS)
    assert info.value.code == "no_grant"


def test_a_grant_is_good_for_one_promotion():
    request = approvals.approve(
        approvals.approve(new(), CAROL, TARGET, at(1), LEADERS), ERIN, TARGET, at(2), LEADERS
    )
    used, grant = approvals.use(request, TARGET, at(3), LEADERS)
    assert grant.target == TARGET
    assert approvals.status(used, at(3), LEADERS) is Status.USED
    assert approvals.grant(used, at(3), LEADERS) is None
    with pytest.raises(Conflict):
        approvals.use(used, TARGET, at(4), LEADERS)


def test_a_new_digest_under_an_open_request_invalidates_it():
    request = approvals.approve(new(), CAROL, TARGET, at(1), LEADERS)
    same = approvals.version_changed(request, "checkout", "prod", "sha256:v2", at(2), LEADERS)
    elsewhere = approvals.version_changed(same, "checkout", "gamma", "sha256:v9", at(2), LEADERS)
    assert approvals.status(elsewhere, at(2), LEADERS) is Status.PENDING
    changed = approvals.version_changed(elsewhere, "checkout", "prod", "sha256:v3", at(3), LEADERS)
    assert approvals.status(changed, at(3), LEADERS) is Status.INVALIDATED
    with pytest.raises(Conflict):
        approvals.approve(changed, ERIN, TARGET, at(4), LEADERS)


def test_drill_grants_serve_drills_only():
    request = new(drill=True)
    request = approvals.approve(
        approvals.approve(request, CAROL, TARGET, at(1), LEADERS), ERIN, TARGET, at(2), LEADERS
    )
    with pytest.raises(Conflict):
        approvals.use(request, TARGET, at(3), LEADERS)
    used, grant = approvals.use(request, TARGET, at(3), LEADERS, drill=True)
    assert grant.drill and approvals.status(used, at(3), LEADERS) is Status.USED


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"ticket": Ticket("OPS-1", "SEV3")}, "ticket_severity"),
        ({"ticket": Ticket("  ", "SEV1")}, "invalid_input"),
        ({"reason": "   "}, "invalid_input"),
        ({"reason": "a\x00b"}, "invalid_input"),
        ({"request_ttl": timedelta(0)}, "invalid_input"),
        ({"grant_ttl": timedelta(days=2)}, "invalid_input"),
        ({"requester": BOT}, "not_human"),
        ({"at": datetime(2026, 5, 6, 10)}, "naive_instant"),
    ],
)
def test_bad_requests_are_refused_naming_the_reason(changes, code):
    with pytest.raises(MechanismsError) as info:
        new(**changes)
    assert info.value.code == code


def test_events_must_come_in_time_order_and_replay_through_apply():
    request = approvals.apply(new(), approvals.Approved(CAROL, TARGET, at(5)), LEADERS)
    with pytest.raises(InvalidInput) as info:
        approvals.apply(request, approvals.Approved(ERIN, TARGET, at(4)), LEADERS)
    assert info.value.code == "out_of_order"
    events = [
        approvals.Approved(ERIN, TARGET, at(6)),
        approvals.Revoked(ERIN, at(7)),
        approvals.Approved(DAVE, TARGET, at(8)),
        approvals.Used(TARGET, at(9)),
    ]
    for step in events:
        request = approvals.apply(request, step, LEADERS)
    assert approvals.status(request, at(9), LEADERS) is Status.USED


# ---------------------------------------------------------------------------------------------
# The invariants, over random histories

PEOPLE = [
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    Principal("frank"),
    BOT,
    Principal("ops-token", human=False),
]
TARGETS = [
    Target(s, st_, d)
    for s in ("checkout", "search")
    for st_ in ("gamma", "prod")
    for d in ("sha256:a", "sha256:b")
]
PIPELINE = {s: Pipeline(s, (Stage("gamma"), Stage("prod"))) for s in ("checkout", "search")}
FREEZE = BlockWindow(
    "freeze", Scope("acme"), OneOff(T0 - timedelta(days=1), T0 + timedelta(days=30)), "freeze"
)
CALENDAR = Calendar([FREEZE])

request_step = st.tuples(
    st.just("request"), st.sampled_from([ALICE, ERIN, BOT]), st.sampled_from(TARGETS), st.booleans()
)
# Approves what the request asks, mostly by people who may.
approve_own = st.tuples(
    st.just("approve_own"), st.sampled_from([CAROL, DAVE, ERIN, Principal("frank"), ALICE, BOT])
)
promote_own = st.tuples(st.just("promote_own"), st.booleans())
STEP_ARGUMENTS = {
    "request": request_step,
    "approve": st.tuples(st.just("approve"), st.sampled_from(PEOPLE), st.sampled_from(TARGETS)),
    "approve_own": approve_own,
    "deny": st.tuples(st.just("deny"), st.sampled_from(PEOPLE)),
    "revoke": st.tuples(st.just("revoke"), st.sampled_from(PEOPLE)),
    "role": st.tuples(st.just("role"), st.sampled_from(PEOPLE), st.booleans()),
    "clock": st.tuples(st.just("clock"), st.sampled_from([0, 1, 5, 20, 61, 240])),
    "version": st.tuples(st.just("version"), st.sampled_from(TARGETS)),
    "promote": st.tuples(st.just("promote"), st.sampled_from(TARGETS), st.booleans()),
    "promote_own": promote_own,
}
# Approvals and promotions of the requested target are drawn more often than the rest, so
# that many histories reach a grant (and then try to misuse it).
WEIGHTS = {"approve_own": 6, "promote_own": 3}
steps = st.sampled_from([k for k in STEP_ARGUMENTS for _ in range(WEIGHTS.get(k, 1))]).flatmap(
    STEP_ARGUMENTS.get
)


def check_invariants(request, now, leaders, current_digest, authors):
    grant = approvals.grant(request, now, leaders)
    if grant is None:
        return
    # Never fewer than two distinct eligible approvers, never without a leader.
    live = [a for a in request.approvals if a.live and a.approver.id in grant.approvers]
    assert len(set(grant.approvers)) == len(grant.approvers) >= 2
    assert len(live) == len(grant.approvers)
    for approval in live:
        assert approval.approver.human
        assert approval.approver.id not in (request.requester.id, authors[request.target])
        # An approval never carries over: each was given for exactly this promotion.
        assert approval.target == request.target == grant.target
        assert approval.at < request.request_expires_at
    assert set(grant.leaders) & leaders and set(grant.leaders) <= set(grant.approvers)
    assert grant.granted_at <= now < grant.expires_at
    assert request.used_at is None and request.denied_at is None
    # A grant is for the version the stage would receive now.
    assert current_digest[(grant.target.service, grant.target.stage)] == grant.target.digest


def promote(target: Target, request, now, leaders, drill):
    """Ask the gate, under a freeze, to promote ``target`` with whatever grant the request holds."""
    grant = approvals.grant(request, now, leaders) if request else None
    gamma = Deployment("gamma", target.digest, now - timedelta(days=1))
    snapshot = Snapshot(
        PIPELINE[target.service],
        CALENDAR.gate_state(Scope("acme", "team", target.service, target.stage), now),
        {"gamma": gamma},
        [SuiteResult("unit", target.digest, 3)],
        grant=grant,
    )
    return evaluate(
        snapshot, Promotion(target.stage, Version("x", target.digest), ALICE, now, drill=drill)
    ), grant


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_step, st.lists(steps, min_size=10, max_size=60))
def test_invariants_hold_over_random_histories(first, history):
    now = T0
    leaders = {"carol", "dave"}
    current_digest = {(t.service, t.stage): "sha256:a" for t in TARGETS}
    authors = {t: "bob" for t in TARGETS}
    request = None
    for step in [first, *history]:
        if step[0] == "promote_own":
            step = ("promote", request.target if request else TARGETS[0], step[1])
        kind = step[0]
        try:
            if kind == "request":
                _, who, target, drill = step
                request = approvals.open_request(
                    "bg",
                    target,
                    requester=who,
                    version_author="bob",
                    org="acme",
                    reason="outage",
                    ticket=Ticket("OPS-1", "SEV2"),
                    at=now,
                    drill=drill,
                )
                current_digest[(target.service, target.stage)] = target.digest
            elif request is None:
                pass
            elif kind == "approve":
                request = approvals.approve(request, step[1], step[2], now, leaders)
            elif kind == "approve_own":
                request = approvals.approve(request, step[1], request.target, now, leaders)
            elif kind == "deny":
                request = approvals.deny(request, step[1], now, leaders)
            elif kind == "revoke":
                request = approvals.revoke(request, step[1], now, leaders)
            elif kind == "version":
                target = step[1]
                current_digest[(target.service, target.stage)] = target.digest
                request = approvals.version_changed(
                    request, target.service, target.stage, target.digest, now, leaders
                )
        except MechanismsError:
            pass  # a refused event changes nothing
        if kind == "role":
            (leaders.add if step[2] else leaders.discard)(step[1].id)
        elif kind == "clock":
            now += timedelta(minutes=step[1])
        elif kind == "promote":
            _, target, drill = step
            decision, grant = promote(target, request, now, leaders, drill)
            # No promotion passes a block window without a valid grant for exactly it.
            if decision.allowed:
                assert grant is not None and grant.target == target and grant.drill == drill
                assert decision.break_glass
                request, spent = approvals.use(request, target, now, leaders, drill=drill)
                assert spent == grant
                event("a promotion went through a block window on a grant")
            else:
                assert [b.code for b in decision.blockers] == ["block_window"]
                assert grant is None or not grant.covers(target, drill=drill)
        if request is not None:
            check_invariants(request, now, frozenset(leaders), current_digest, authors)
