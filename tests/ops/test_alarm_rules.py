"""The ops mechanism's alarm rules: metric alarms, composite rules, anomaly bands, silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mechanisms.ops.alarm_rules import (
    AlarmDefinition,
    AlarmState,
    And,
    Const,
    Not,
    Or,
    RuleSyntaxError,
    Silence,
    StateIs,
    composite_order,
    evaluate,
    evaluate_composites,
    evaluate_rule,
    evaluation_window,
    fit_baseline,
    is_silenced,
    parse_rule,
)

OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA
RETAIN = "retain"
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
# An evaluation a little after 10:05, so the last complete 5-minute period is 10:00-10:05.
NOW = datetime(2025, 3, 1, 10, 7, 12, tzinfo=UTC)
PERIOD = 300


def definition(n: int = 3, m: int = 3, treat: str = "missing", **extra: object) -> AlarmDefinition:
    fields: dict[str, object] = {
        "statistic": "p99",
        "comparison": "GreaterThanThreshold",
        "threshold": 100.0,
        "period_seconds": PERIOD,
        "evaluation_periods": n,
        "datapoints_to_alarm": m,
        "treat_missing_data": treat,
    }
    fields.update(extra)
    return AlarmDefinition(**fields)  # type: ignore[arg-type]


def datapoints(pattern: str, now: datetime = NOW) -> dict[datetime, float]:
    """The documentation's notation, oldest first and the most recent on the right:
    0 a datapoint within the threshold, X a breaching one, - a missing one."""
    marks = pattern.split()
    _, end = evaluation_window(definition(), now)
    step = timedelta(seconds=PERIOD)
    points = {}
    for age, mark in enumerate(reversed(marks), start=1):
        if mark != "-":
            points[end - age * step] = {"0": 50.0, "X": 150.0}[mark]
    return points


# --- the documentation's table ------------------------------------------------------------

# Amazon CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data",
# section "How alarm state is evaluated when data is missing" (the 2023 text in
# github.com/awsdocs/amazon-cloudwatch-user-guide, doc_source/AlarmThatSendsEmail.md;
# today at docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html).
# Evaluation range 5. Columns: MISSING, IGNORE, BREACHING, NOT BREACHING.
TABLE_3_OF_3 = [
    ("0 - X - X", (OK, OK, OK, OK)),
    ("0 - - - -", (OK, OK, OK, OK)),
    ("- - - - -", (INSUFFICIENT, RETAIN, ALARM, OK)),
    ("0 X X - X", (ALARM, ALARM, ALARM, ALARM)),
    ("- - X - -", (ALARM, RETAIN, ALARM, OK)),
]
TABLE_2_OF_3 = [
    ("0 - X - X", (ALARM, ALARM, ALARM, ALARM)),
    ("0 0 X 0 X", (ALARM, ALARM, ALARM, ALARM)),
    ("0 - X - -", (OK, OK, ALARM, OK)),
    ("- - - - 0", (OK, OK, ALARM, OK)),
    ("- - - X -", (ALARM, RETAIN, ALARM, OK)),
]
# Rows only the earlier revision of the same page has (doc_source/AlarmThatSendsEmail.md
# before 2021): the premature-ALARM cases where the lone breaching datapoint is too recent.
EARLIER_3_OF_3 = [
    ("- - - - X", (INSUFFICIENT, RETAIN, ALARM, OK)),
    ("X - - - -", (ALARM, RETAIN, ALARM, OK)),
]
EARLIER_2_OF_3 = [
    ("- - - - X", (INSUFFICIENT, RETAIN, ALARM, OK)),
]

GOLDEN = (
    [(3, 3, p, e) for p, e in TABLE_3_OF_3]
    + [(3, 2, p, e) for p, e in TABLE_2_OF_3]
    + [(3, 3, p, e) for p, e in EARLIER_3_OF_3]
    + [(3, 2, p, e) for p, e in EARLIER_2_OF_3]
)


@pytest.mark.parametrize(
    ("n", "m", "pattern", "expected"),
    GOLDEN,
    ids=[f"{m}of{n}[{p}]" for n, m, p, _ in GOLDEN],
)
def test_every_row_of_the_cloudwatch_missing_data_table(n, m, pattern, expected):
    """Reproduces every row of both tables in CloudWatch's "Configuring how CloudWatch
    alarms treat missing data" (Datapoints to Alarm and Evaluation Periods both 3; then
    2 out of 3), evaluation range 5, under each of the four treat_missing_data settings,
    and the rows an earlier revision of the page also listed."""
    points = datapoints(pattern)
    for treat, want in zip(TREATMENTS, expected, strict=True):
        for current in AlarmState:
            got = evaluate(definition(n, m, treat), points, NOW, current).new_state
            assert got == (current if want == RETAIN else want), (treat, current, pattern)


def test_the_documented_premature_alarm_examples():
    """The section "Avoiding premature transitions to alarm state": with 3 of 3, a lone
    breaching datapoint that is too recent does not alarm, and the next non-breaching
    datapoint then makes the alarm OK."""
    for pattern in ("- - - - X", "- - - X -"):
        assert evaluate(definition(), datapoints(pattern), NOW, OK).new_state != ALARM
    for pattern in ("- - - X 0", "- - X - 0"):
        assert evaluate(definition(), datapoints(pattern), NOW, ALARM).new_state == OK
    assert evaluate(definition(), datapoints("- - X - -"), NOW, OK).new_state == ALARM


def test_breaching_alarms_once_the_last_real_datapoint_leaves_the_range():
    """The documentation's note on row 2: "0 - - - -" stays OK when missing data is
    breaching, and goes to ALARM one period later when the data is still missing."""
    alarm = definition(treat="breaching")
    points = datapoints("0 - - - -")
    assert evaluate(alarm, points, NOW, OK).new_state == OK
    later = evaluate(alarm, points, NOW + timedelta(seconds=PERIOD), OK)
    assert later.new_state == ALARM
    assert later.missing_filled == 3


def test_enough_real_datapoints_use_older_ones_and_ignore_the_treatment():
    result = evaluate(definition(treat="notBreaching"), datapoints("0 X X - X"), NOW, OK)
    assert result.new_state == ALARM
    assert [p.value for p in result.evaluated] == [150.0, 150.0, 150.0]
    assert result.missing_filled == 0
    # newest first, and the missing 09:55 period is skipped for the real 09:45 one
    assert [p.timestamp.strftime("%H:%M") for p in result.evaluated] == ["10:00", "09:50", "09:45"]


def test_m_out_of_n_with_three_of_five():
    alarm = definition(n=5, m=3)
    assert evaluate(alarm, datapoints("X 0 X 0 X"), NOW).new_state == ALARM
    assert evaluate(alarm, datapoints("X 0 X 0 0"), NOW).new_state == OK
    # range 7: two older real datapoints stand in for two missing recent ones
    assert evaluate(alarm, datapoints("X X 0 - - X 0"), NOW).new_state == ALARM
    breaching = definition(n=5, m=3, treat="breaching")
    assert evaluate(breaching, datapoints("- - - X 0 - -"), NOW).new_state == ALARM
    assert (
        evaluate(
            definition(n=5, m=3, treat="notBreaching"), datapoints("- - - X 0 - -"), NOW
        ).new_state
        == OK
    )


marks = st.lists(st.sampled_from("0X-"), min_size=7, max_size=7).map(" ".join)


@given(marks, st.integers(1, 5), st.integers(1, 5), st.sampled_from(list(AlarmState)))
def test_treatments_agree_without_missing_data_and_breaching_fills_alarm_more(
    pattern, n, m, current
):
    n, m = max(n, m), min(n, m)
    points = datapoints(pattern)
    states = {
        treat: evaluate(definition(n, m, treat), points, NOW, current).new_state
        for treat in TREATMENTS
    }
    recent = pattern.split()[-(n + 2) :]
    if "-" not in recent:
        assert len(set(states.values())) == 1
        assert (states["missing"] == ALARM) == (recent[-n:].count("X") >= m)
    if states["notBreaching"] == ALARM:
        assert states["breaching"] == ALARM
    assert states["breaching"] != INSUFFICIENT and states["notBreaching"] != INSUFFICIENT


def test_the_reason_reads_like_cloudwatch():
    result = evaluate(definition(n=5, m=3), datapoints("X 0 X 0 X"), NOW, OK)
    assert result.reason == (
        "Threshold Crossed: 3 out of the last 5 datapoints [150.0 (01/03/25 10:00:00), "
        "150.0 (01/03/25 09:50:00), 150.0 (01/03/25 09:40:00)] were greater than the "
        "threshold (100.0) (minimum 3 datapoints for OK -> ALARM transition)."
    )
    assert result.changed
    assert result.breaching == (True, False, True, False, True)
    calm = evaluate(definition(), datapoints("X X 0"), NOW, ALARM)
    assert calm.new_state == OK
    assert calm.reason.startswith(
        "Threshold Crossed: 1 out of the last 3 datapoints [50.0 (01/03/25 10:00:00)] was not "
        "greater than the threshold (100.0)"
    )
    empty = evaluate(definition(), {}, NOW, OK)
    assert empty.reason == "Insufficient Data: 5 datapoints were unknown."
    filled = evaluate(definition(treat="breaching"), {}, NOW, OK)
    assert "5 periods and 3 missing datapoints were treated as [Breaching]" in filled.reason


def test_comparisons_are_strict_or_inclusive_as_named():
    at = NOW.replace(minute=0, second=0)
    exactly = {at - timedelta(seconds=PERIOD * i): 100.0 for i in range(3)}
    expected = {
        "GreaterThanThreshold": OK,
        "GreaterThanOrEqualToThreshold": ALARM,
        "LessThanThreshold": OK,
        "LessThanOrEqualToThreshold": ALARM,
    }
    for comparison, state in expected.items():
        alarm = definition(n=3, m=3, comparison=comparison)
        assert evaluate(alarm, exactly, NOW).new_state == state, comparison


def test_only_complete_periods_in_the_range_count():
    end = NOW.replace(minute=5, second=0)
    running = {end: 500.0}  # the period 10:05-10:10 is still running at 10:07
    too_old = {end - timedelta(seconds=PERIOD * 6): 500.0}  # outside the range of 5
    assert evaluate(definition(), running | too_old, NOW).new_state == INSUFFICIENT
    assert (
        evaluate(definition(), {end - timedelta(seconds=PERIOD): None}, NOW).new_state
        == INSUFFICIENT
    )


def test_bad_datapoints_and_arguments_name_the_problem():
    alarm = definition()
    at = NOW.replace(minute=0, second=0)
    with pytest.raises(ValueError, match="must be a finite number"):
        evaluate(alarm, {at: float("nan")}, NOW)
    with pytest.raises(ValueError, match="finite"):
        evaluate(alarm, {at: float("inf")}, NOW)
    with pytest.raises(ValueError, match="expected a number"):
        evaluate(alarm, {at: True}, NOW)
    with pytest.raises(ValueError, match="not the start of a 300-second period"):
        evaluate(alarm, {at + timedelta(seconds=60): 1.0}, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(alarm, {at.replace(tzinfo=None): 1.0}, NOW)
    with pytest.raises(ValueError, match="now: must be timezone-aware"):
        evaluate(alarm, {}, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="current_state"):
        evaluate(alarm, {}, NOW, "PANIC")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"threshold": float("nan")}, "threshold", "finite"),
        ({"threshold": float("inf")}, "threshold", "finite"),
        ({"threshold": None}, "threshold", "required"),
        ({"datapoints_to_alarm": 4}, "datapoints_to_alarm", "must not exceed"),
        ({"datapoints_to_alarm": 0}, "datapoints_to_alarm", "greater than or equal to 1"),
        ({"period_seconds": 90}, "period_seconds", "multiple of 60"),
        ({"period_seconds": 30}, "period_seconds", "greater than or equal to 60"),
        ({"statistic": "median"}, "statistic", "unknown statistic"),
        ({"statistic": "p999"}, "statistic", "unknown statistic"),
        ({"comparison": "Bigger"}, "comparison", "GreaterThanThreshold"),
        ({"treat_missing_data": "zero"}, "treat_missing_data", "notBreaching"),
        ({"evaluation_periods": 3000}, "evaluation_periods", "7 days"),
        ({"evaluation_periods": True}, "evaluation_periods", "valid integer"),
        ({"band_width": 2.0}, "band_width", "anomaly"),
        ({"evaluation_range_periods": 2}, "evaluation_range_periods", "at least"),
        ({"alarm_name": "x"}, "alarm_name", "Extra inputs"),
    ],
)
def test_a_bad_definition_names_the_field(change, field, words):
    with pytest.raises(ValidationError) as caught:
        definition(**change)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert words in errors[0]["msg"]


def test_statistics_and_anomaly_definitions():
    for statistic in ("avg", "sum", "min", "max", "count", "p50", "p95", "p99", "p99.9", "p100"):
        assert definition(statistic=statistic).statistic == statistic
    band = definition(comparison="GreaterThanUpperThreshold", threshold=None, band_width=2.0)
    assert band.is_anomaly
    with pytest.raises(ValidationError, match="band_width"):
        definition(comparison="LessThanLowerThreshold", threshold=None)
    with pytest.raises(ValidationError, match="band_width"):
        definition(comparison="LessThanLowerThreshold", threshold=None, band_width=0.0)
    with pytest.raises(ValidationError, match="not threshold"):
        definition(comparison="LessThanLowerThreshold", band_width=2.0)
    with pytest.raises(ValueError, match="baseline"):
        evaluate(band, {}, NOW)


# --- composite alarms ---------------------------------------------------------------------


def test_composite_rules_parse_and_evaluate():
    rule = parse_rule('ALARM("api-latency") AND NOT OK("db-errors")')
    assert rule.alarms == {"api-latency", "db-errors"}
    assert rule.expression == And((StateIs(ALARM, "api-latency"), Not(StateIs(OK, "db-errors"))))
    assert evaluate_rule(rule, {"api-latency": "ALARM", "db-errors": "INSUFFICIENT_DATA"})
    assert not evaluate_rule(rule, {"api-latency": ALARM, "db-errors": OK})
    assert not evaluate_rule(rule, {"api-latency": OK, "db-errors": ALARM})


def test_and_binds_tighter_than_or_and_parentheses_regroup():
    states = {"a": ALARM, "b": OK, "c": OK}
    assert evaluate_rule("ALARM(a) OR ALARM(b) AND ALARM(c)", states)
    assert not evaluate_rule("(ALARM(a) OR ALARM(b)) AND ALARM(c)", states)
    assert evaluate_rule("NOT NOT ALARM(a)", states)
    assert evaluate_rule("TRUE", {}) and not evaluate_rule("FALSE", {})
    assert evaluate_rule("INSUFFICIENT_DATA(x) OR FALSE", {"x": INSUFFICIENT})


def test_names_may_be_bare_arns_or_quoted_with_escapes():
    arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:cpu-high"
    assert parse_rule(f"ALARM({arn})").alarms == {arn}
    assert parse_rule('ALARM( "disk (root) \\"full\\"" )').alarms == {'disk (root) "full"'}
    rule = parse_rule('ALARM("a b") AND NOT (OK(c) OR TRUE)')
    assert parse_rule(str(rule)).expression == rule.expression


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 0, "empty"),
        ("ALARM(a) AND", 12, "found the end of the rule"),
        ("ALARM(a) AND OR OK(b)", 13, "found 'OR'"),
        ("(ALARM(a) OR OK(b)", 18, "to close the '(' at position 0"),
        ("ALARM(a))", 8, "expected AND, OR or the end"),
        ("ALARM a", 6, "expected '(' after ALARM"),
        ("ALARM()", 6, "needs an alarm name"),
        ('ALARM("open', 6, "is not closed"),
        ("alarm(a)", 0, "upper case"),
        ("ALARM(a) and OK(b)", 9, "expected AND, OR"),
        ("WARN(a)", 0, "expected ALARM(...)"),
        ("ALARM(a b)", 8, "expected ')' after the alarm name"),
    ],
)
def test_malformed_rules_name_the_position(text, position, words):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    assert caught.value.position == position
    assert words in str(caught.value)
    assert f"at position {position}" in str(caught.value)


def test_rule_limits_and_unknown_alarms():
    with pytest.raises(ValueError, match="at most 10240"):
        parse_rule("TRUE OR " * 2000 + "TRUE")
    with pytest.raises(RuleSyntaxError, match="deeper than 100"):
        parse_rule("(" * 150 + "TRUE" + ")" * 150)
    with pytest.raises(ValueError, match="'db', which has no state"):
        evaluate_rule("ALARM(api) OR ALARM(db)", {"api": ALARM})
    with pytest.raises(ValueError, match="not an alarm state"):
        evaluate_rule("ALARM(api)", {"api": "RED"})


def test_composites_of_composites_evaluate_in_order_and_cycles_are_named():
    rules = {
        "page": 'ALARM("service") AND NOT ALARM("maintenance")',
        "service": "ALARM(latency) OR ALARM(errors)",
    }
    assert composite_order(rules) == ["service", "page"]
    states = {"latency": ALARM, "errors": OK, "maintenance": OK}
    assert evaluate_composites(rules, states) == {"service": ALARM, "page": ALARM}
    cyclic = {"a": "ALARM(b)", "b": "ALARM(c) AND OK(x)", "c": "NOT ALARM(a)"}
    with pytest.raises(ValueError, match="cycle: a -> b -> c -> a"):
        composite_order(cyclic)
    with pytest.raises(ValueError, match="cycle: self -> self"):
        evaluate_composites({"self": "ALARM(self)"}, {})


def rule_trees(names=("a", "b", "c")):
    leaves = st.builds(Const, st.booleans()) | st.builds(
        StateIs, st.sampled_from(list(AlarmState)), st.sampled_from(names)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.builds(Not, inner)
            | st.builds(And, st.tuples(inner, inner))
            | st.builds(Or, st.tuples(inner, inner))
        ),
        max_leaves=12,
    )


def reference(node, states) -> bool:
    match node:
        case Const(value):
            return value
        case StateIs(state, alarm):
            return states[alarm] == state
        case Not(operand):
            return not reference(operand, states)
        case And(operands):
            return all(reference(o, states) for o in operands)
        case Or(operands):
            return any(reference(o, states) for o in operands)


@given(rule_trees(), st.fixed_dictionaries({n: st.sampled_from(list(AlarmState)) for n in "abc"}))
def test_printed_rules_parse_back_to_the_same_truth(tree, states):
    assert evaluate_rule(str(tree), states) == reference(tree, states)


@given(st.text(alphabet='AL RMOKNTD()"ab\\_', max_size=40))
def test_any_text_parses_or_fails_with_a_syntax_error(text):
    try:
        rule = parse_rule(text)
    except RuleSyntaxError as error:
        assert 0 <= error.position <= len(text)
    else:
        evaluate_rule(rule, dict.fromkeys(rule.alarms, OK))


# --- anomaly bands ------------------------------------------------------------------------


def weekday_history(zone: str = "UTC", weeks: int = 4):
    """Busy hours 09:00-17:00 (about 1000 requests), quiet otherwise (about 100), local."""
    tz = ZoneInfo(zone)
    start = datetime(2025, 3, 3, tzinfo=tz)  # a Monday
    points = []
    for hour in range(weeks * 7 * 24):
        local = (start.astimezone(UTC) + timedelta(hours=hour)).astimezone(tz)
        wobble = ((hour * 37) % 11 - 5) * (10.0 if 9 <= local.hour < 17 else 1.0)
        points.append((local, (1000.0 if 9 <= local.hour < 17 else 100.0) + wobble))
    return points


def test_the_band_follows_the_hour_of_day():
    baseline = fit_baseline(weekday_history(), "hour_of_day")
    noon = datetime(2025, 4, 2, 12, 30, tzinfo=UTC)
    night = datetime(2025, 4, 2, 3, 30, tzinfo=UTC)
    day_band, night_band = baseline.band(noon, 2.0), baseline.band(night, 2.0)
    assert 950 < day_band.center < 1050 and day_band.bucket == "hour 12"
    assert 95 < night_band.center < 105 and not night_band.fallback
    assert baseline.check(noon, 400.0, "LessThanLowerOrGreaterThanUpperThreshold", 2.0).breaching
    assert not baseline.check(night, 400.0, "LessThanLowerThreshold", 2.0).breaching
    assert baseline.check(night, 400.0, "GreaterThanUpperThreshold", 2.0).breaching
    assert not baseline.check(
        noon, 1000.0, "LessThanLowerOrGreaterThanUpperThreshold", 2.0
    ).breaching
    assert baseline.band(noon, 4.0).upper - baseline.band(noon, 4.0).lower == pytest.approx(
        2 * (day_band.upper - day_band.lower)
    )


def test_one_outlier_barely_moves_a_robust_band():
    history = weekday_history()
    spiked = [(at, 1_000_000.0 if i == 12 else v) for i, (at, v) in enumerate(history)]
    at = datetime(2025, 4, 2, 12, 30, tzinfo=UTC)
    assert fit_baseline(spiked).band(at, 2.0).upper == pytest.approx(
        fit_baseline(history).band(at, 2.0).upper, rel=0.05
    )


def test_thin_buckets_fall_back_to_coarser_ones():
    history = weekday_history(weeks=1)  # one sample per hour of week
    baseline = fit_baseline(history, "hour_of_week", min_bucket_samples=3)
    band = baseline.band(datetime(2025, 4, 2, 12, 30, tzinfo=UTC), 2.0)
    assert band.fallback and band.bucket == "hour 12"  # the hour of day has 7 samples
    sparse = fit_baseline(history[:30], "hour_of_day", min_bucket_samples=3)
    everything = sparse.band(datetime(2025, 4, 2, 12, 30, tzinfo=UTC), 2.0)
    assert everything.fallback and everything.bucket == "all"
    weekly = fit_baseline(history, "day_of_week", min_bucket_samples=3)
    assert weekly.band(datetime(2025, 4, 5, 12, tzinfo=UTC), 1.0).bucket == "Saturday"


def test_seasonal_buckets_are_in_local_wall_clock_time():
    baseline = fit_baseline(weekday_history("Europe/Berlin"), time_zone="Europe/Berlin")
    # 10:30 UTC is 12:30 in Berlin in summer time (after 30 March 2025): busy.
    assert baseline.band(datetime(2025, 3, 31, 10, 30, tzinfo=UTC), 2.0).bucket == "hour 12"
    # 07:30 UTC is 08:30 in Berlin in winter, 09:30 in summer.
    winter = baseline.band(datetime(2025, 3, 7, 7, 30, tzinfo=UTC), 2.0)
    summer = baseline.band(datetime(2025, 3, 31, 7, 30, tzinfo=UTC), 2.0)
    assert winter.center < 200 < summer.center


def test_an_anomaly_alarm_evaluates_each_period_against_its_band():
    baseline = fit_baseline(weekday_history(), "hour_of_day")
    alarm = AlarmDefinition(
        statistic="sum",
        comparison="LessThanLowerOrGreaterThanUpperThreshold",
        band_width=3.0,
        period_seconds=3600,
        evaluation_periods=3,
        datapoints_to_alarm=2,
    )
    now = datetime(2025, 4, 2, 13, 10, tzinfo=UTC)
    normal = {datetime(2025, 4, 2, h, tzinfo=UTC): 1000.0 for h in (10, 11, 12)}
    result = evaluate(alarm, normal, now, OK, baseline=baseline)
    assert result.new_state == OK
    assert all(p.band is not None for p in result.evaluated)
    dropped = normal | {datetime(2025, 4, 2, h, tzinfo=UTC): 100.0 for h in (11, 12)}
    result = evaluate(alarm, dropped, now, OK, baseline=baseline)
    assert result.new_state == ALARM
    assert "outside the band (3.0 deviations)" in result.reason


def test_bad_history_names_the_problem():
    with pytest.raises(ValueError, match="history: needs at least one"):
        fit_baseline([])
    with pytest.raises(ValueError, match=r"history\[1\]: must be a finite number"):
        fit_baseline(
            [
                (datetime(2025, 1, 1, tzinfo=UTC), 1.0),
                (datetime(2025, 1, 1, 1, tzinfo=UTC), float("nan")),
            ]
        )
    with pytest.raises(ValueError, match=r"history\[0\]: must be timezone-aware"):
        fit_baseline([(datetime(2025, 1, 1), 1.0)])
    with pytest.raises(ValueError, match="seasonality"):
        fit_baseline([(datetime(2025, 1, 1, tzinfo=UTC), 1.0)], "monthly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_zone: unknown IANA time zone"):
        fit_baseline([(datetime(2025, 1, 1, tzinfo=UTC), 1.0)], time_zone="Mars/Olympus")
    baseline = fit_baseline([(datetime(2025, 1, 1, tzinfo=UTC), 1.0)])
    with pytest.raises(ValueError, match="width"):
        baseline.band(datetime(2025, 1, 1, tzinfo=UTC), float("nan"))
    with pytest.raises(ValueError, match="comparison"):
        baseline.check(datetime(2025, 1, 1, tzinfo=UTC), 1.0, "GreaterThanThreshold", 2.0)


# --- scheduled silences -------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")


def saturday_nights(**extra: object) -> Silence:
    return Silence(
        name="weekend batch",
        start=datetime(2025, 1, 4, 22, 0),  # a Saturday, wall clock in Berlin
        end=datetime(2025, 1, 5, 2, 0),
        rrule="FREQ=WEEKLY;BYDAY=SA",
        time_zone="Europe/Berlin",
        **extra,
    )


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_a_weekly_silence_holds_in_wall_clock_time_in_winter_and_summer():
    silence = saturday_nights()
    assert is_silenced([silence], berlin(2025, 1, 11, 23, 30)) is silence
    assert is_silenced([silence], berlin(2025, 7, 12, 22, 0)) is silence
    assert is_silenced([silence], berlin(2025, 7, 13, 1, 59)) is silence
    assert is_silenced([silence], berlin(2025, 7, 12, 21, 59)) is None
    assert is_silenced([silence], berlin(2025, 7, 13, 2, 0)) is None
    # 21:30 UTC is 22:30 in winter (silenced) and 23:30 in summer (silenced); 20:30 UTC
    # is 21:30 in winter (not silenced) but 22:30 in summer (silenced).
    assert is_silenced([silence], datetime(2025, 1, 11, 20, 30, tzinfo=UTC)) is None
    assert is_silenced([silence], datetime(2025, 7, 12, 20, 30, tzinfo=UTC)) is silence
    assert is_silenced([silence], berlin(2025, 7, 16, 23, 0)) is None  # a Wednesday


def test_a_weekly_silence_across_the_dst_changes():
    silence = saturday_nights()
    # Clocks go forward on Sunday 30 March 2025 at 02:00: the window 22:00-02:00 CET is
    # 21:00-01:00 UTC.
    assert silence.window_at(berlin(2025, 3, 29, 23, 0)) == (
        datetime(2025, 3, 29, 21, 0, tzinfo=UTC),
        datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
    )
    assert is_silenced([silence], berlin(2025, 3, 30, 1, 59)) is silence
    assert is_silenced([silence], berlin(2025, 3, 30, 3, 0)) is None  # the first minute of CEST
    # Clocks go back on Sunday 26 October 2025 at 03:00: 22:00 CEST to the first 02:00.
    assert silence.window_at(berlin(2025, 10, 25, 23, 0)) == (
        datetime(2025, 10, 25, 20, 0, tzinfo=UTC),
        datetime(2025, 10, 26, 0, 0, tzinfo=UTC),
    )
    assert is_silenced([silence], datetime(2025, 10, 25, 23, 59, tzinfo=UTC)) is silence
    assert is_silenced([silence], datetime(2025, 10, 26, 0, 30, tzinfo=UTC)) is None
    # and the Saturday after is back to CET: 21:00-01:00 UTC
    assert is_silenced([silence], datetime(2025, 11, 1, 21, 0, tzinfo=UTC)) is silence
    assert is_silenced([silence], datetime(2025, 11, 1, 20, 59, tzinfo=UTC)) is None


def test_one_off_silences_limits_and_alarm_filters():
    once = Silence(
        start=datetime(2025, 5, 1, 9, 0, tzinfo=UTC),
        end=datetime(2025, 5, 1, 10, 0, tzinfo=UTC),
        time_zone="Europe/Berlin",
        alarms=("api-latency",),
    )
    assert once.start == datetime(2025, 5, 1, 11, 0)  # stored as Berlin wall-clock time
    inside = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)
    assert is_silenced([once], inside, "api-latency") is once
    assert is_silenced([once], inside, "db-errors") is None
    assert is_silenced([once], inside) is once
    assert is_silenced([once], datetime(2025, 5, 1, 10, 0, tzinfo=UTC)) is None
    ended = saturday_nights()
    counted = Silence(**(ended.model_dump() | {"rrule": "FREQ=WEEKLY;COUNT=2"}))
    assert is_silenced([counted], berlin(2025, 1, 11, 23, 0)) is counted
    assert is_silenced([counted], berlin(2025, 1, 18, 23, 0)) is None
    until = Silence(**(ended.model_dump() | {"rrule": "RRULE:FREQ=WEEKLY;UNTIL=20250111T220000Z"}))
    assert is_silenced([until], berlin(2025, 1, 11, 23, 0)) is until  # 22:00 CET <= 23:00 CET
    assert is_silenced([until], berlin(2025, 1, 18, 23, 0)) is None
    with pytest.raises(ValueError, match="at: must be timezone-aware"):
        is_silenced([once], datetime(2025, 5, 1, 9, 30))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"time_zone": "Europe/Atlantis"}, "time_zone", "unknown IANA time zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "unknown IANA time zone"),
        ({"end": datetime(2025, 1, 4, 21, 0)}, "end", "must be after start"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "rrule", "never matches"),
        ({"rrule": "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31"}, "rrule", "never matches"),
        ({"rrule": "FREQ=HOURLY;INTERVAL=168;BYDAY=MO"}, "rrule", "never matches"),
        ({"rrule": "FREQ=WEEKLY;UNTIL=20200101T000000Z"}, "rrule", "no occurrence"),
        ({"rrule": "FREQ=SOMETIMES"}, "rrule", "not a valid recurrence rule"),
        ({"rrule": "FREQ=DAILY;INTERVAL=0"}, "rrule", "INTERVAL"),
        ({"rrule": "DTSTART:20250101T000000\nRRULE:FREQ=DAILY"}, "rrule", "without DTSTART"),
        ({"rrule": ""}, "rrule", "empty"),
        ({"repeat": "weekly"}, "repeat", "Extra inputs"),
        ({"name": "bad\x00name"}, "name", "control characters"),
        ({"alarms": ("api", "")}, "alarms", "alarms[1]"),
    ],
)
def test_a_bad_silence_names_the_field(change, field, words):
    fields = saturday_nights().model_dump() | change
    with pytest.raises(ValidationError) as caught:
        Silence(**fields)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert words in errors[0]["msg"]


def test_a_rare_rule_still_matches():
    leap_monday = Silence(
        **(
            saturday_nights().model_dump()
            | {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO"}
        )
    )
    assert is_silenced([leap_monday], berlin(2044, 2, 29, 23, 0)) is leap_monday
