"""The pure rule that tells which edits of a window or a pipeline are protected changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from mechanisms.deploys.calendar import BlockWindow, OneOff, Recurring, Scope
from mechanisms.deploys.protection import Level, classify_pipeline, classify_window

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PROD = Scope("acme", "payments", "checkout", "prod")


def one_off(start_h: float, end_h: float, scope: Scope = PROD) -> BlockWindow:
    start, end = NOW + timedelta(hours=start_h), NOW + timedelta(hours=end_h)
    return BlockWindow("w", scope, OneOff(start, end))


def level(before, after) -> Level:
    return classify_window(before, after, NOW).level


def test_adding_a_window_is_free_and_deleting_one_far_ahead_too():
    assert level(None, one_off(-1, 5)) is Level.FREE
    assert level(one_off(48, 50), None) is Level.FREE
    assert level(one_off(-5, -1), None) is Level.FREE  # over already


def test_deleting_or_narrowing_a_window_starting_within_a_day_needs_a_leader():
    assert level(one_off(2, 5), None) is Level.LEADER
    assert level(one_off(2, 5), one_off(3, 5)) is Level.LEADER  # starts later
    assert level(one_off(2, 5), one_off(1, 6)) is Level.FREE  # widened


def test_lifting_any_part_of_the_block_in_force_needs_two_leaders():
    assert level(one_off(-1, 5), None) is Level.TWO_PERSON
    assert level(one_off(-1, 5), one_off(-1, 1)) is Level.TWO_PERSON  # ends sooner
    assert level(one_off(-1, 5), one_off(-72, -71)) is Level.TWO_PERSON  # moved to the past
    assert level(one_off(-1, 5), one_off(-1, 9)) is Level.FREE
    service = Scope("acme", "payments", "checkout")
    narrowed = classify_window(one_off(-1, 5, service), one_off(-1, 5, PROD), NOW)
    assert narrowed.level is Level.TWO_PERSON and "scope" in narrowed.reasons[0]


def test_a_recurring_window_that_would_skip_a_coming_occurrence_needs_a_leader():
    daily = Recurring("FREQ=DAILY", datetime(2026, 1, 1, 8), timedelta(hours=2), "UTC")
    weekdays = Recurring(
        "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", datetime(2026, 1, 1, 8), timedelta(hours=2), "UTC"
    )
    # 09:00 on a Monday: today's occurrence holds and stays; the weekend ones would go.
    before, after = BlockWindow("w", PROD, daily), BlockWindow("w", PROD, weekdays)
    assert level(before, after) is Level.LEADER
    assert level(after, before) is Level.FREE


@given(st.floats(-48, 48), st.floats(0.5, 48), st.floats(0, 24), st.floats(0, 24))
def test_a_window_that_still_covers_all_it_covered_is_never_protected(start, length, more, less):
    before = one_off(start, start + length)
    assert level(before, one_off(start - less, start + length + more)) is Level.FREE


STAGES = [
    {
        "name": "beta",
        "required_suites": ["integration"],
        "bake_minutes": 30,
        "alarms": ["errors"],
        "approval": None,
    },
    {
        "name": "prod",
        "required_suites": ["integration"],
        "bake_minutes": 0,
        "alarms": [],
        "approval": {"roles": ["leader"], "count": 2},
    },
]


def pipeline_level(after, blocked=None) -> Level:
    return classify_pipeline(STAGES, after, blocked or {}).level


def with_stage(i, **changes):
    return [{**s, **changes} if j == i else s for j, s in enumerate(STAGES)]


def test_raising_a_pipeline_is_free():
    assert classify_pipeline(None, STAGES, {}).level is Level.FREE
    assert pipeline_level(with_stage(1, required_suites=["integration", "smoke"])) is Level.FREE
    assert pipeline_level(with_stage(0, bake_minutes=60)) is Level.FREE
    assert pipeline_level([*STAGES, {"name": "eu", "required_suites": []}]) is Level.FREE


def test_each_lowering_needs_a_leader():
    for lowered in (
        with_stage(1, required_suites=[]),
        with_stage(1, required_suites=["smoke"]),
        with_stage(1, approval={"roles": ["leader"], "count": 1}),
        with_stage(1, approval={"roles": ["engineer", "leader"], "count": 2}),
        with_stage(1, approval=None),
        with_stage(0, bake_minutes=5),
        with_stage(0, alarms=[]),
        STAGES[1:],
        list(reversed(STAGES)),
    ):
        assert pipeline_level(lowered) is Level.LEADER, lowered


def test_a_lowering_that_clears_what_blocks_the_newest_version_needs_two_leaders():
    failed = {"prod": frozenset({"tests_failed"})}
    assert pipeline_level(with_stage(1, required_suites=[]), failed) is Level.TWO_PERSON
    assert pipeline_level(with_stage(0, required_suites=[]), failed) is Level.LEADER
    waiting = {"prod": frozenset({"approval_required"})}
    lowered = with_stage(1, approval={"roles": ["leader"], "count": 1})
    assert pipeline_level(lowered, waiting) is Level.TWO_PERSON
    baking = {"prod": frozenset({"baking"})}
    assert pipeline_level(with_stage(0, bake_minutes=0), baking) is Level.TWO_PERSON
    assert pipeline_level(STAGES[1:], {"prod": frozenset({"previous_stage_missing"})}) is (
        Level.TWO_PERSON
    )
