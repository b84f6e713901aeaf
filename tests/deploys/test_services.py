"""Deploy services on both backends: pipelines, tests, windows, the gate, promotions, bakes
and rollbacks through the worker, stage approvals, and break-glass end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mechanisms.core.tables import Event
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.deploys.tables import Deployment, TestRun
from mechanisms.ops import alarms, tickets

from .conftest import FAILING, PASSING, STAGES, ship, work


def codes(decision):
    return [b.code for b in decision.blockers]


def freeze_prod(run, clock, hours=48, scope="org", target="acme", reason="year-end freeze"):
    return run(windows.freeze, scope, target, clock.now() + timedelta(hours=hours), reason)


def test_a_version_goes_stage_by_stage_after_its_tests_and_bake(db, run, clock, checkout):
    run(pipelines.register_version, "checkout", "v1", "sha256:aaa", "sam")
    assert codes(run(pipelines.gate, "checkout", "beta", "v1")) == ["tests_missing"]
    run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", PASSING)
    assert run(pipelines.gate, "checkout", "beta", "v1").allowed
    decision, deployment = run(pipelines.promote, "checkout", "beta", "sha256:aaa")
    assert decision.allowed and deployment.state == "baking"
    assert codes(run(pipelines.gate, "checkout", "prod", "v1")) == ["baking"]
    clock.advance(minutes=31)
    work(db, clock)
    beta, prod = run(pipelines.stage_states, "checkout")
    assert (beta["deployment"]["state"], prod["deployment"]) == ("succeeded", None)
    decision, deployment = run(pipelines.promote, "checkout", "prod", "v1")
    assert decision.allowed and deployment.state == "succeeded"  # prod has no bake
    kinds = [e.kind for e in run(pipelines.timeline, "checkout")]
    assert kinds[:3] == ["promoted", "baked", "promoted"]


def test_failing_tests_block_and_malformed_junit_is_refused_with_nothing_stored(run, checkout):
    run(pipelines.register_version, "checkout", "v1", "sha256:aaa")
    run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", FAILING)
    decision = run(pipelines.gate, "checkout", "beta", "v1")
    assert codes(decision) == ["tests_failed"]
    assert decision.blockers[0].details == {"suite": "integration", "failures": 1, "errors": 0}
    with pytest.raises(InvalidInput):
        run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", b"<testsuite><oops")
    assert len(run(pipelines.test_runs, "checkout", "sha256:aaa")) == 1
    # A later passing run of the same suite for this digest clears the blocker.
    run(pipelines.upload_tests, "checkout", "sha256:aaa", "integration", PASSING)
    assert run(pipelines.gate, "checkout", "beta", "v1").allowed


def test_overlapping_stages_and_unknown_alarms_are_refused(run, checkout):
    with pytest.raises(InvalidInput) as refused:
        run(pipelines.set_pipeline, "checkout", [{"name": "beta"}, {"name": "beta"}])
    assert refused.value.code == "overlapping_stages"
    with pytest.raises(InvalidInput) as refused:
        run(pipelines.set_pipeline, "checkout", [{"name": "beta", "alarms": ["nope"]}])
    assert refused.value.details["field"] == "stages[0].alarms[0]"
    assert [s["name"] for s in run(pipelines.stage_states, "checkout")] == ["beta", "prod"]


def test_an_org_window_blocks_every_service_with_its_reason_and_next_transition(
    run, clock, checkout
):
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    row = freeze_prod(run, clock, hours=10)
    decision = run(pipelines.gate, "checkout", "prod", "v1")
    assert codes(decision) == ["block_window"]
    assert decision.window.next_transition == row.expires_at
    assert decision.blockers[0].details["windows"][0]["reason"] == "year-end freeze"
    # Later the same call answers from the model: the freeze is over.
    assert run(pipelines.gate, "checkout", "prod", "v1", clock.now() + timedelta(hours=11)).allowed
    # Once the freeze is over, moving it is no protected change (tests/security covers the
    # edits of a window in force).
    clock.advance(hours=11)
    later = {"kind": "one_off", "start": "2026-02-01T00:00", "end": "2026-02-02T00:00"}
    run(windows.update_window, row.uid, later)
    assert run(pipelines.gate, "checkout", "prod", "v1").allowed
    with pytest.raises(InvalidInput):
        run(windows.update_window, row.uid, {**later, "end": "2026-01-01T00:00"})
    assert run(windows.get_window, row.uid).definition["end"] == "2026-02-02T00:00:00"
    run(windows.delete_window, row.uid)
    assert run(windows.list_windows) == []


def test_a_recurring_weekend_window_on_one_stage(run, clock, checkout):
    ship(run)
    definition = {
        "kind": "recurring",
        "rrule": "FREQ=WEEKLY;BYDAY=FR",
        "dtstart": "2026-01-02T15:00:00",
        "end_time": "09:00",
        "days_later": 3,
        "tz": "Europe/Berlin",
    }
    run(windows.create_window, "stage", "checkout/prod", definition, "weekend")
    state = run(windows.gate_state, "checkout", "prod", clock.now())
    assert state.open and state.next_transition.isoformat() == "2026-01-09T14:00:00+00:00"
    friday = clock.now() + timedelta(days=4, hours=7)
    assert not run(windows.gate_state, "checkout", "prod", friday).open
    assert run(windows.gate_state, "checkout", "beta", friday).open
    # March 2026: the weekend across the spring-forward night still ends at 09:00 Berlin.
    march = run(
        windows.occurrences,
        "checkout",
        "prod",
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert [b.ends_at.isoformat() for b in march][-2:] == [
        "2026-03-23T08:00:00+00:00",  # 09:00 CET
        "2026-03-30T07:00:00+00:00",  # 09:00 CEST, after the spring-forward night
    ]


def test_window_refusals_name_the_reason(run, checkout, as_user):
    with pytest.raises(InvalidInput) as refused:
        run(
            windows.create_window,
            "service",
            "checkout",
            {
                "kind": "one_off",
                "start": "2026-01-05T10:00",
                "end": "2026-01-05T11:00",
                "tz": "Mars/Olympus",
            },
        )
    assert refused.value.details["field"] == "tz"
    with pytest.raises(InvalidInput):
        run(
            windows.create_window,
            "service",
            "checkout",
            {
                "kind": "recurring",
                "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
                "dtstart": "2026-01-01T00:00",
                "duration_minutes": 60,
            },
        )
    with pytest.raises(Forbidden):
        run(
            windows.freeze,
            "org",
            "acme",
            datetime(2027, 1, 1, tzinfo=UTC),
            "no",
            as_=as_user("eve"),
        )
    assert run(windows.list_windows) == []


def test_ical_export_imports_back_into_the_same_windows(run, checkout):
    run(
        windows.create_window,
        "service",
        "checkout",
        {
            "kind": "recurring",
            "rrule": "FREQ=WEEKLY;BYDAY=FR",
            "dtstart": "2026-01-02T15:00:00",
            "duration_minutes": 66 * 60,
            "tz": "Europe/Berlin",
        },
        "weekend",
        "weekend",
    )
    exported = run(windows.export_ical, "checkout")
    assert b"RRULE:FREQ=WEEKLY;BYDAY=FR" in exported
    run(windows.delete_window, "weekend")
    imported = run(windows.import_ical, "service", "checkout", exported)
    assert [(w.uid, w.kind, w.definition["duration_minutes"]) for w in imported] == [
        ("weekend", "recurring", 3960)
    ]


def test_a_freeze_expires_by_itself(db, run, clock, checkout):
    freeze_prod(run, clock, hours=2, scope="service", target="checkout")
    clock.advance(hours=3)
    work(db, clock)
    assert run(windows.list_windows) == []
    assert run(pipelines.timeline, "checkout")[0].kind == "window_expired"


def test_an_alarm_during_bake_rolls_the_stage_back_through_the_worker(db, run, clock, checkout):
    ship(run, "v1", "sha256:aaa")
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    work(db, clock)
    ship(run, "v2", "sha256:bbb")
    run(pipelines.promote, "checkout", "beta", "v2")
    clock.advance(minutes=5)
    run(alarms.set_state, "checkout-errors", "ALARM", "5xx at 7 %")
    work(db, clock)
    beta = run(pipelines.stage_states, "checkout")[0]["deployment"]
    assert (beta["digest"], beta["state"]) == ("sha256:aaa", "succeeded")
    with db.transaction(write=False) as session:
        rolled = session.execute(
            select(Deployment).where(Deployment.digest == "sha256:bbb")
        ).scalar_one()
        assert (rolled.state, rolled.rollback_alarm) == ("rolled_back", "checkout-errors")
        event = session.execute(
            select(Event).where(Event.type == "deploys.rolled_back")
        ).scalar_one()
        assert event.payload["to"] == "sha256:aaa"
    decision = run(pipelines.gate, "checkout", "prod", "v2")
    assert codes(decision) == ["bake_alarm"]


def test_an_alarm_already_quiet_when_the_bake_ends_still_rolls_back(db, run, clock, checkout):
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=5)
    run(alarms.set_state, "checkout-errors", "ALARM", "spike")
    clock.advance(minutes=1)
    run(alarms.set_state, "checkout-errors", "OK", "recovered")
    clock.advance(minutes=30)
    work(db, clock)
    assert run(pipelines.stage_states, "checkout")[0]["deployment"]["state"] == "rolled_back"


def test_a_stage_approval_counts_only_from_someone_else(run, checkout, as_user):
    stages = [STAGES[0], {**STAGES[1], "approval": {"roles": ["leader"], "count": 1}}]
    run(pipelines.set_pipeline, "checkout", stages)
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    leo, eve = as_user("leo"), as_user("eve")
    with pytest.raises(Forbidden):
        run(pipelines.approve_stage, "checkout", "prod", "v1", as_=eve)
    run(pipelines.approve_stage, "checkout", "prod", "v1", as_=leo)
    # Approving again would add nothing: refused with why, not accepted as if it counted.
    with pytest.raises(Conflict, match="counts once") as again:
        run(pipelines.approve_stage, "checkout", "prod", "v1", as_=leo)
    assert again.value.code == "already_approved"
    later = run(pipelines.gate, "checkout", "prod", "v1", as_=leo)
    assert "approval_required" in codes(later)  # leo's own promotion: his approval is excluded
    assert "approval_required" not in codes(run(pipelines.gate, "checkout", "prod", "v1", as_=eve))


# --- break-glass ----------------------------------------------------------------------


@pytest.fixture
def blocked_prod(run, clock, checkout):
    """v1 baked in beta, prod frozen, and a SEV1 ticket."""
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    freeze_prod(run, clock, scope="stage", target="checkout/prod")
    return run(tickets.create, "checkout", "checkout is down for EU cards", 1)


def test_break_glass_end_to_end(db, run, clock, blocked_prod, as_user):
    eve, leo, ada, robot = (as_user(u) for u in ("eve", "leo", "ada", "robot"))
    request = run(
        breakglass.request, "checkout", "prod", "v1", "EU card fix", str(blocked_prod.id), as_=eve
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    with pytest.raises(Forbidden):
        run(breakglass.approve, request.id, **target, as_=eve)
    with pytest.raises(Forbidden):
        run(breakglass.approve, request.id, **target, as_=robot)
    with pytest.raises(Conflict):
        run(breakglass.approve, request.id, **{**target, "digest": "sha256:other"}, as_=leo)
    run(breakglass.approve, request.id, **target, as_=leo)
    assert not run(pipelines.promote, "checkout", "prod", "v1", as_=eve)[0].allowed
    clock.advance(minutes=1)
    granted = run(breakglass.approve, request.id, **target, as_=ada)
    assert granted.status == "granted"
    decision, deployment = run(pipelines.promote, "checkout", "prod", "v1", as_=eve)
    assert decision.allowed and decision.break_glass and deployment.break_glass_id == request.id
    used = run(breakglass.get, request.id)
    assert used.status == "used"
    with db.transaction(write=False) as session:
        told = session.execute(
            select(Event).where(Event.type == "deploys.breakglass_used")
        ).scalar_one()
    assert (told.payload["approvers"], told.payload["org"]) == (["leo", "ada"], "acme")
    # Single use: the next promotion of the same version is blocked again.
    assert codes(run(pipelines.gate, "checkout", "prod", "v1", as_=eve)) == ["block_window"]
    [review] = run(breakglass.list_reviews)
    run(breakglass.close_review, review.id, "shipped the EU fix", "SEV1 outage", as_=eve)
    assert run(breakglass.list_reviews) == []
    kinds = [e.kind for e in reversed(run(pipelines.timeline, "checkout"))]
    assert kinds[-6:] == [
        "breakglass_approved",
        "breakglass_granted",
        "breakglass_used",
        "breakglass_review_opened",
        "promoted",
        "breakglass_review_closed",
    ]


def test_break_glass_needs_a_sev1_or_sev2_ticket_and_only_a_window_blocking(
    run, clock, blocked_prod, as_user
):
    eve = as_user("eve")
    minor = run(tickets.create, "checkout", "typo", 3)
    with pytest.raises(InvalidInput) as refused:
        run(breakglass.request, "checkout", "prod", "v1", "fix", str(minor.id), as_=eve)
    assert refused.value.code == "ticket_severity"
    with pytest.raises(InvalidInput):
        run(breakglass.request, "checkout", "prod", "v1", "fix", "9999", as_=eve)
    run(pipelines.register_version, "checkout", "v2", "sha256:bbb")
    with pytest.raises(Conflict) as refused:
        run(breakglass.request, "checkout", "prod", "v2", "fix", str(blocked_prod.id), as_=eve)
    assert refused.value.code == "not_only_window"


def test_a_leader_denies_and_an_unapproved_request_expires(db, run, clock, blocked_prod, as_user):
    eve, leo = as_user("eve"), as_user("leo")
    first = run(breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve)
    with pytest.raises(Forbidden):
        run(breakglass.deny, first.id, "no", as_=eve)
    assert run(breakglass.deny, first.id, "wait for Monday", as_=leo).status == "denied"
    # Asking again is refused until a leader lifts the denial.
    with pytest.raises(Conflict):
        run(breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve)
    run(breakglass.lift_denial, first.id, "the fix is smaller now", as_=leo)
    second = run(breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve)
    clock.advance(minutes=61)
    work(db, clock)
    assert run(breakglass.get, second.id).status == "expired"


def test_a_new_digest_for_the_artifact_invalidates_an_open_request(run, blocked_prod, as_user):
    eve = as_user("eve")
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    run(pipelines.register_version, "checkout", "v1", "sha256:rebuilt")
    assert run(breakglass.get, request.id).status == "invalidated"


def test_a_drill_runs_the_whole_path_and_deploys_nothing(db, run, clock, blocked_prod, as_user):
    eve, leo, ada = as_user("eve"), as_user("leo"), as_user("ada")
    request = run(
        breakglass.request,
        "checkout",
        "prod",
        "v1",
        "drill",
        str(blocked_prod.id),
        drill=True,
        as_=eve,
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    run(breakglass.approve, request.id, **target, as_=leo)
    run(breakglass.approve, request.id, **target, as_=ada)
    # The drill grant never lets a real promotion through.
    assert not run(pipelines.promote, "checkout", "prod", "v1", as_=eve)[0].allowed
    decision, deployment = run(pipelines.promote, "checkout", "prod", "v1", drill=True, as_=eve)
    assert decision.allowed and deployment is None
    assert run(breakglass.get, request.id).status == "used"
    assert len(run(breakglass.list_reviews)) == 1
    assert run(pipelines.stage_states, "checkout")[1]["deployment"] is None


def test_a_viewer_reads_but_cannot_change(run, checkout, as_user):
    vic = as_user("vic")
    assert run(pipelines.get_pipeline, "checkout", as_=vic).service_key == "checkout"
    with pytest.raises(Forbidden):
        run(pipelines.register_version, "checkout", "v1", "sha256:aaa", as_=vic)
    with pytest.raises(NotFound):
        run(pipelines.gate, "checkout", "prod", "nope", as_=vic)
    with pytest.raises(Forbidden):
        run(pipelines.upload_tests, "checkout", "v1", "integration", PASSING, as_=vic)
    assert run(lambda ctx: ctx.session.execute(select(TestRun)).all()) == []


def test_a_revoked_approval_or_a_demoted_leader_stops_counting_at_once(run, blocked_prod, as_user):
    from mechanisms.core import accounts

    run(accounts.create_user, "lea")
    run(accounts.set_membership, "payments", "lea", "engineer")
    eve, leo, lea = as_user("eve"), as_user("leo"), as_user("lea")
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    run(breakglass.approve, request.id, **target, as_=lea)
    assert run(breakglass.approve, request.id, **target, as_=leo).status == "granted"
    run(breakglass.revoke, request.id, as_=leo)
    assert not run(pipelines.promote, "checkout", "prod", "v1", as_=eve)[0].allowed
    run(breakglass.approve, request.id, **target, as_=leo)
    assert run(breakglass.get, request.id).status == "granted"
    # Leo stops being a leader: the grant no longer has one, so it no longer exists.
    run(accounts.set_membership, "acme", "leo", "engineer")
    decision, deployment = run(pipelines.promote, "checkout", "prod", "v1", as_=eve)
    assert codes(decision) == ["block_window"] and deployment is None
    assert run(breakglass.describe, run(breakglass.get, request.id))["leader_approved"] is False


def test_a_new_version_in_the_stage_before_invalidates_the_request(run, blocked_prod, as_user):
    eve = as_user("eve")
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    ship(run, "v2", "sha256:bbb")
    run(pipelines.promote, "checkout", "beta", "v2")
    assert run(breakglass.get, request.id).status == "invalidated"


def test_an_unused_grant_expires(db, run, clock, blocked_prod, as_user):
    eve, leo, ada = as_user("eve"), as_user("leo"), as_user("ada")
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    run(breakglass.approve, request.id, **target, as_=leo)
    run(breakglass.approve, request.id, **target, as_=ada)
    clock.advance(hours=4, minutes=1)
    work(db, clock)
    assert run(breakglass.get, request.id).status == "grant_expired"
    assert codes(run(pipelines.gate, "checkout", "prod", "v1", as_=eve)) == ["block_window"]


def test_revoking_an_approval_never_moves_the_grant_expiry_later(
    db, run, clock, blocked_prod, as_user
):
    from mechanisms.core import accounts

    for name in ("lea", "max"):
        run(accounts.create_user, name)
        run(accounts.set_membership, "payments", name, "engineer")
    eve, leo, lea, mx = (as_user(u) for u in ("eve", "leo", "lea", "max"))
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    run(breakglass.approve, request.id, **target, as_=leo)
    clock.advance(minutes=1)
    granted = run(breakglass.approve, request.id, **target, as_=lea)
    expires = granted.grant_expires_at
    assert expires == clock.now() + timedelta(hours=4)
    clock.advance(minutes=10)
    run(breakglass.approve, request.id, **target, as_=mx)
    clock.advance(minutes=10)
    # Leo and max still meet the rule, but the grant was made when lea approved.
    assert run(breakglass.revoke, request.id, as_=lea).grant_expires_at == expires
    run(breakglass.approve, request.id, **target, as_=lea)
    assert run(breakglass.get, request.id).grant_expires_at == expires
    clock.advance(minutes=4 * 60 - 20)
    work(db, clock)
    assert run(breakglass.get, request.id).status == "grant_expired"
    assert codes(run(pipelines.gate, "checkout", "prod", "v1", as_=eve)) == ["block_window"]


def test_decisions_read_like_every_other_timeline_kind(run, blocked_prod, as_user):
    eve, leo, ada = as_user("eve"), as_user("leo"), as_user("ada")
    request = run(
        breakglass.request, "checkout", "prod", "v1", "fix", str(blocked_prod.id), as_=eve
    )
    target = {"service": "checkout", "stage": "prod", "digest": "sha256:aaa"}
    run(breakglass.approve, request.id, **target, as_=ada)
    run(breakglass.revoke, request.id, as_=ada)
    run(breakglass.deny, request.id, "wait for Monday", as_=leo)
    kinds = [e.kind for e in reversed(run(pipelines.timeline, "checkout"))]
    # One entry per decision, each in the past tense; the denial is not told twice.
    assert kinds[-4:] == [
        "breakglass_requested",
        "breakglass_approved",
        "breakglass_approval_revoked",
        "breakglass_denied",
    ]
