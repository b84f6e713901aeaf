"""The pieces the ops graphs are drawn from (ops/charts.py) and what an alarm's page says
and draws (ops/alarm_view.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mechanisms.ops import alarm_view, charts
from mechanisms.ops.alarm_rules import AlarmDefinition, fit_baseline

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_spans_cut_the_range_at_each_change_and_carry_the_state_in_from_before():
    changes = [
        (minutes(-30), "OK"),
        (minutes(20), "ALARM"),
        (minutes(40), "OK"),
        (minutes(90), "ALARM"),
    ]
    assert charts.spans(changes, T0, minutes(60)) == [
        charts.Span(T0, minutes(20), "OK"),
        charts.Span(minutes(20), minutes(40), "ALARM"),
        charts.Span(minutes(40), minutes(60), "OK"),
    ]
    # Nothing is drawn before the first known state.
    assert charts.spans([(minutes(10), "OK")], T0, minutes(60)) == [
        charts.Span(minutes(10), minutes(60), "OK")
    ]


def test_bands_sit_where_their_spans_are():
    xs = charts.TimeScale(T0, minutes(60))
    (band,) = charts.bands([charts.Span(minutes(15), minutes(45), "ALARM")], xs)
    assert (band.x, band.width, band.state) == (250.0, 500.0, "ALARM")


def test_a_missing_value_breaks_the_line():
    xs, ys = charts.TimeScale(T0, minutes(4)), charts.ValueScale(0, 100)
    points = [(minutes(0), 0.0), (minutes(1), 50.0), (minutes(2), None), (minutes(3), 100.0)]
    assert charts.line_path(points, xs, ys) == "M0.0 100.0 L250.0 50.0 M750.0 0.0"


def test_the_value_scale_keeps_the_threshold_in_view_and_ends_on_a_round_number():
    ys = charts.ValueScale.covering([120.0, 130.0], include=[300.0])
    assert (ys.low, ys.high) == (0.0, 500.0)
    assert ys.y(300) == 40.0
    assert [t.label for t in ys.ticks()] == ["0", "125", "250", "375", "500"]
    assert charts.ValueScale.covering([None, None]) == charts.ValueScale(0.0, 1.0)
    assert charts.ValueScale.covering([-3.0, 2.0]).low == -5.0


def test_time_ticks_fall_on_round_times():
    xs = charts.TimeScale(minutes(7), minutes(7 + 360))
    labels = [t.label for t in xs.ticks()]
    assert labels == ["13:00", "14:00", "15:00", "16:00", "17:00", "18:00"]
    week = charts.TimeScale(T0, T0 + timedelta(days=7))
    assert [t.label for t in week.ticks()] == ["03 Mar", "05 Mar", "07 Mar"]


def test_the_area_between_two_lines_is_one_closed_shape_per_stretch():
    xs, ys = charts.TimeScale(T0, minutes(2)), charts.ValueScale(0, 10)
    path = charts.area_path(
        [(minutes(0), 2, 8), (minutes(1), 2, 8), (minutes(2), None, None)], xs, ys
    )
    assert path == "M0.0 20.0 L500.0 20.0 L500.0 80.0 L0.0 80.0 Z"


DEFINITION = {
    "statistic": "p99",
    "comparison": "GreaterThanThreshold",
    "threshold": 300,
    "period_seconds": 60,
    "evaluation_periods": 5,
    "datapoints_to_alarm": 3,
}


def test_a_definition_in_words():
    assert alarm_view.describe("metric", "checkout_latency_ms", {}, DEFINITION) == (
        "p99 of checkout_latency_ms > 300 for 3 of 5 periods of 1 min; missing data: missing"
    )
    band = {
        **DEFINITION,
        "comparison": "LessThanLowerOrGreaterThanUpperThreshold",
        "threshold": None,
        "band_width": 2,
        "period_seconds": 300,
        "treat_missing_data": "breaching",
    }
    assert alarm_view.describe("metric", "rps", {"region": "eu"}, band) == (
        'p99 of rps{region="eu"} outside the band of 2 deviations for 3 of 5 periods of '
        "5 min; missing data: breaching"
    )
    assert alarm_view.describe("composite", None, {}, {"rule": 'ALARM("a") AND OK("b")'}) == (
        'ALARM when ALARM("a") AND OK("b")'
    )


def test_long_ranges_merge_periods_into_at_most_400_points():
    assert alarm_view.display_period(60, timedelta(hours=6)) == 60
    assert alarm_view.display_period(60, timedelta(days=7)) == 1800
    assert alarm_view.display_period(300, timedelta(hours=24)) == 300
    assert alarm_view.display_period(120, timedelta(days=7)) == 1800
    assert alarm_view.display_period(420, timedelta(days=7)) == 1680


def test_an_anomaly_alarm_draws_its_band_and_no_threshold():
    definition = AlarmDefinition.model_validate(
        {
            **DEFINITION,
            "comparison": "GreaterThanUpperThreshold",
            "threshold": None,
            "band_width": 2,
        }
    )
    history = [(minutes(-i), 100.0 + (i % 5)) for i in range(1, 600)]
    baseline = fit_baseline(history, "hour_of_day")
    points = [(minutes(i), 100.0) for i in range(60)]
    chart = alarm_view.metric_chart(
        definition, points, [], T0, minutes(60), series="rps", baseline=baseline
    )
    assert chart.rules == []
    assert [a.kind for a in chart.areas] == ["anomaly-band"]
    assert chart.areas[0].path.startswith("M0.0 ")


def test_a_cut_short_history_starts_from_the_oldest_known_state():
    changes = [alarm_view.Change(minutes(10), "OK", "ALARM")]
    assert alarm_view.state_changes(changes, T0, complete=True)[0] == (T0, "INSUFFICIENT_DATA")
    assert alarm_view.state_changes(changes, T0, complete=False)[0][1] == "OK"


def test_spans_that_are_not_alarm_states_carry_their_colour():
    xs = charts.TimeScale(T0, minutes(60))
    stretches = charts.spans([(T0, "ada"), (minutes(30), "eve")], T0, minutes(60))
    drawn = charts.bands(stretches, xs, {"ada": charts.PALETTE[0], "eve": charts.PALETTE[1]})
    assert [(b.state, b.color, b.x) for b in drawn] == [
        ("ada", "#2563eb", 0.0),
        ("eve", "#f59e0b", 500.0),
    ]
