"""How an alarm reads and looks on its page: its definition in words, the graph of its
statistic with the threshold (or anomaly band) and the state it was in over time.

Pure: the page hands in the alarm's rows, datapoints and transitions; nothing here reads
the database or the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mechanisms.ops import alarm_rules, charts
from mechanisms.ops.alarm_rules import AlarmDefinition, AnomalyBaseline

# The ranges a graph offers, and the one it opens with.
RANGES = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_RANGE = "6h"
# At most this many points across a graph: a week of one-minute periods is 10,080 points,
# more than a graph a thousand units wide can show; longer periods merge them (percentiles
# from merged sketches, so the picture stays true to the statistic).
MAX_POINTS = 400
_ROUND_PERIODS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

COMPARISON_WORDS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": "≥",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside the band of",
    "GreaterThanUpperThreshold": "above the band of",
    "LessThanLowerThreshold": "below the band of",
}
# The band a page draws for an anomaly alarm is fitted on this much history before the
# graph's end, with an hour-of-day seasonality.
BASELINE_HISTORY = timedelta(days=3)


def duration_words(seconds: int) -> str:
    """60 → "1 min", 5400 → "90 min", 7200 → "2 h", 86400 → "1 day"."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days > 1 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def series_words(metric: str | None, match: Mapping[str, str]) -> str:
    """checkout_latency_ms{region="eu"}, as Prometheus writes a selector."""
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(match.items()))
    return f"{metric or '?'}{{{labels}}}" if labels else (metric or "?")


def number_words(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)


def describe(kind: str, metric: str | None, match: Mapping[str, str], definition: Any) -> str:
    """The definition in one line: "p99 of checkout_latency_ms > 300 for 3 of 5 periods
    of 1 min; missing data: missing"."""
    if kind == "composite":
        return f"ALARM when {definition.get('rule', '?')}"
    d = definition if isinstance(definition, AlarmDefinition) else parse(definition)
    if d is None:
        return "a definition this version cannot read"
    if d.is_anomaly:
        limit = f"{number_words(d.band_width or 0)} deviations"
    else:
        limit = number_words(d.threshold or 0.0)
    what = (
        f"{d.statistic} of {series_words(metric, match)} {COMPARISON_WORDS[d.comparison]} {limit}"
    )
    return (
        f"{what} for {d.datapoints_to_alarm} of {d.evaluation_periods} periods of "
        f"{duration_words(d.period_seconds)}; missing data: {d.treat_missing_data}"
    )


def parse(definition: Any) -> AlarmDefinition | None:
    try:
        return AlarmDefinition.model_validate(definition)
    except ValueError:
        return None


def display_period(alarm_period: int, span: timedelta) -> int:
    """The period of each point on a graph of ``span``: the alarm's own period when that
    gives at most MAX_POINTS points, else the smallest round multiple of it that does."""
    seconds = span.total_seconds()
    if seconds / alarm_period <= MAX_POINTS:
        return alarm_period
    for period in _ROUND_PERIODS:
        if period % alarm_period == 0 and seconds / period <= MAX_POINTS:
            return period
    return alarm_period * math.ceil(seconds / alarm_period / MAX_POINTS)


@dataclass(frozen=True)
class Change:
    """One transition: when, from which state to which."""

    at: datetime
    from_state: str
    to_state: str


def state_changes(
    transitions: Sequence[Change], created_at: datetime, complete: bool
) -> list[tuple[datetime, str]]:
    """(time, state) from the alarm's creation on, in time order. An alarm starts in
    INSUFFICIENT_DATA; when the history was cut short, its oldest transition's
    ``from_state`` is the earliest state known."""
    ordered = sorted(transitions, key=lambda t: t.at)
    if complete or not ordered:
        first = [(created_at, alarm_rules.AlarmState.INSUFFICIENT_DATA.value)]
    else:
        first = [(ordered[0].at - timedelta(microseconds=1), ordered[0].from_state)]
    return first + [(t.at, t.to_state) for t in ordered]


def state_chart(
    changes: Sequence[tuple[datetime, str]], start: datetime, end: datetime, label: str
) -> charts.TimeChart:
    """Only the state bands (a composite alarm has no metric to draw)."""
    xs = charts.TimeScale(start, end)
    chart = charts.TimeChart(
        xs, charts.ValueScale(0, 1), label, testid="alarm-chart", value_axis=False
    )
    chart.bands = charts.bands(charts.spans(changes, start, end), xs)
    return chart


def fit_band(
    definition: AlarmDefinition, history: Sequence[tuple[datetime, float | None]]
) -> AnomalyBaseline | None:
    """The seasonal baseline an anomaly alarm's band is drawn from (None without data)."""
    present = [(at, v) for at, v in history if v is not None]
    if not definition.is_anomaly or not present:
        return None
    return alarm_rules.fit_baseline(present, "hour_of_day", min_bucket_samples=8)


def metric_chart(
    definition: AlarmDefinition,
    points: Sequence[tuple[datetime, float | None]],
    changes: Sequence[tuple[datetime, str]],
    start: datetime,
    end: datetime,
    *,
    series: str,
    baseline: AnomalyBaseline | None = None,
) -> charts.TimeChart:
    """The alarm's statistic over [start, end), its threshold line (or anomaly band) and
    the state bands."""
    width = number_words(definition.band_width or 0)
    return value_chart(
        points,
        start,
        end,
        label=f"{definition.statistic} of {series}",
        changes=changes,
        threshold=definition.threshold,
        band=_band_points(definition, points, baseline),
        band_label=f"band ({width} deviations)",
        testid="alarm-chart",
    )


def value_chart(
    points: Sequence[tuple[datetime, float | None]],
    start: datetime,
    end: datetime,
    *,
    label: str,
    changes: Sequence[tuple[datetime, str]] = (),
    threshold: float | None = None,
    band: Sequence[tuple[datetime, float | None, float | None]] = (),
    band_label: str = "band",
    testid: str = "chart",
) -> charts.TimeChart:
    """Datapoints as a line (gaps where a period had no data), with an optional threshold
    line, band and state bands behind them."""
    limits = [threshold] + [v for _, low, high in band for v in (low, high)]
    xs = charts.TimeScale(start, end)
    ys = charts.ValueScale.covering((v for _, v in points), include=limits)
    chart = charts.TimeChart(
        xs, ys, f"Graph of {label} from {start:%Y-%m-%d %H:%M} UTC", testid=testid
    )
    chart.bands = charts.bands(charts.spans(changes, start, end), xs)
    if band:
        chart.areas.append(charts.Line(charts.area_path(band, xs, ys), "anomaly-band", band_label))
    if threshold is not None:
        chart.rules.append(
            charts.Rule(ys.y(threshold), "threshold", f"threshold {number_words(threshold)}")
        )
    chart.lines.append(charts.Line(charts.line_path(points, xs, ys), "value", label))
    chart.dots = [
        (x, y, f"{at:%Y-%m-%d %H:%M} UTC · {charts.format_value(v)}")
        for x, y, at, v in charts.dots(points, xs, ys)
    ]
    return chart


def _band_points(
    definition: AlarmDefinition,
    points: Sequence[tuple[datetime, float | None]],
    baseline: AnomalyBaseline | None,
) -> list[tuple[datetime, float | None, float | None]]:
    if baseline is None or definition.band_width is None:
        return []
    out = []
    for at, _ in points:
        b = baseline.band(at, definition.band_width)
        out.append((at, b.lower, b.upper))
    return out


def deciding_points(datapoints: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A transition's stored datapoints, ready to list: the time, the value (or how the
    missing period was treated) and whether it breached."""
    out = []
    for p in datapoints:
        try:
            at = datetime.fromisoformat(str(p.get("at")))
        except ValueError:
            continue
        value = p.get("value")
        if p.get("filled"):
            shown = (
                "missing (treated as breaching)"
                if p.get("breaching")
                else "missing (treated as OK)"
            )
        elif value is None:
            shown = "missing"
        else:
            shown = charts.format_value(value)
        out.append({"at": at, "value": shown, "breaching": bool(p.get("breaching"))})
    return out
