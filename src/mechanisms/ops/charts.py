"""Server-drawn SVG charts for the ops pages: time and value scales, line and area paths,
coloured spans (alarm states, on-call shifts), horizontal rules (thresholds, targets).

Every chart draws into a ``WIDTH`` x ``HEIGHT`` viewBox stretched to its box
(``preserveAspectRatio="none"``); axis labels are HTML laid over it at percent positions,
so text never stretches. ``ops/charts.html`` renders a ``TimeChart`` (the macro
``time_chart``); a page builds one from these helpers:

    xs = TimeScale(start, end)
    ys = ValueScale.covering(values, include=[threshold])
    chart = TimeChart(xs, ys, label="p99 of latency")
    chart.lines.append(Line(line_path(points, xs, ys), "value", "p99"))
    chart.rules.append(Rule(ys.y(threshold), "threshold", "threshold 300"))
    chart.bands.extend(bands(spans(changes, start, end), xs))

Pure: no database, no clock; times are timezone-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mechanisms.web.scales import nice_ceil

WIDTH = 1000.0
HEIGHT = 100.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Tick spacings a reader can count in: minutes, hours, days.
_TIME_STEPS = (
    60,
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
)


def _round(value: float) -> float:
    return round(value, 2)


@dataclass(frozen=True)
class Tick:
    """An axis label: where it goes (percent of the axis, 0-100) and what it says.
    ``align`` keeps the first and last labels inside the chart (start, middle, end)."""

    percent: float
    label: str
    align: str = "middle"


def _aligned(percent: float) -> str:
    if percent <= 3:
        return "start"
    return "end" if percent >= 94 else "middle"


@dataclass(frozen=True)
class TimeScale:
    """Time on the x axis: ``start`` at 0, ``end`` at ``width``."""

    start: datetime
    end: datetime
    width: float = WIDTH

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1.0)

    def fraction(self, at: datetime) -> float:
        return max(0.0, min(1.0, (at - self.start).total_seconds() / self.seconds))

    def x(self, at: datetime) -> float:
        return _round(self.fraction(at) * self.width)

    def percent(self, at: datetime) -> float:
        return _round(self.fraction(at) * 100)

    def step(self, count: int = 6) -> int:
        """The tick spacing in seconds: the smallest round one giving at most ``count``."""
        for step in _TIME_STEPS:
            if self.seconds / step <= count:
                return step
        return 86400 * math.ceil(self.seconds / 86400 / count)

    def ticks(self, count: int = 6) -> list[Tick]:
        """Labels at round UTC times (whole hours, midnights) inside the range."""
        step = self.step(count)
        delta = timedelta(seconds=step)
        first = EPOCH + math.ceil((self.start - EPOCH) / delta) * delta
        fmt = "%d %b" if step >= 86400 else ("%H:%M" if self.seconds <= 86400 else "%d %b %H:%M")
        ticks = []
        at = first
        while at <= self.end:
            percent = self.percent(at)
            ticks.append(Tick(percent, at.strftime(fmt), _aligned(percent)))
            at += delta
        return ticks


def format_value(value: float | None) -> str:
    """A number short enough for an axis or a tooltip: 0.0123, 12.5, 1,250, 3.4M."""
    if value is None or not math.isfinite(value):
        return "—"
    size = abs(value)
    if size >= 1e6:
        for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
            if size >= limit:
                return f"{value / limit:.3g}{suffix}"
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 1 or value == 0:
        return f"{value:.4g}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class ValueScale:
    """Values on the y axis: ``low`` at the bottom (``height``), ``high`` at the top (0)."""

    low: float
    high: float
    height: float = HEIGHT

    @classmethod
    def covering(
        cls, values: Iterable[float | None], *, include: Iterable[float | None] = ()
    ) -> ValueScale:
        """From zero (or the lowest negative value) to a round number above the highest
        value, keeping ``include`` (a threshold, a band) in view."""
        seen = [v for v in (*values, *include) if v is not None and math.isfinite(v)]
        if not seen:
            return cls(0.0, 1.0)
        top, bottom = max(seen), min(seen)
        high = nice_ceil(top * 1.05) if top > 0 else 0.0
        low = -nice_ceil(-bottom * 1.05) if bottom < 0 else 0.0
        if high == low:
            high = low + 1.0
        return cls(low, high)

    def fraction(self, value: float) -> float:
        return max(0.0, min(1.0, (value - self.low) / (self.high - self.low)))

    def y(self, value: float) -> float:
        return _round((1 - self.fraction(value)) * self.height)

    def percent(self, value: float) -> float:
        """From the top, for HTML labels laid over the chart."""
        return _round((1 - self.fraction(value)) * 100)

    def ticks(self, count: int = 4) -> list[Tick]:
        return [
            Tick(self.percent(v), format_value(v))
            for v in (self.low + (self.high - self.low) * i / count for i in range(count + 1))
        ]


def line_path(
    points: Iterable[tuple[datetime, float | None]], xs: TimeScale, ys: ValueScale
) -> str:
    """An SVG path through the points in time order; a missing value (None) breaks the
    line, so a gap in the data shows as a gap."""
    parts: list[str] = []
    pen_down = False
    for at, value in points:
        if value is None or not math.isfinite(value):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{xs.x(at)} {ys.y(value)}")
        pen_down = True
    return " ".join(parts)


def dots(
    points: Iterable[tuple[datetime, float | None]], xs: TimeScale, ys: ValueScale
) -> list[tuple[float, float, datetime, float]]:
    """(x, y, at, value) of every present point: a lone point between gaps draws no line,
    so pages mark each one (and give it a tooltip)."""
    return [
        (xs.x(at), ys.y(value), at, value)
        for at, value in points
        if value is not None and math.isfinite(value)
    ]


def step_path(
    points: Sequence[tuple[datetime, float]], xs: TimeScale, ys: ValueScale, until: datetime
) -> str:
    """A step line: each value holds until the next one (capacity, rollout share), the
    last until ``until``."""
    if not points:
        return ""
    path = f"M{xs.x(points[0][0])} {ys.y(points[0][1])}"
    for at, value in points[1:]:
        path += f" H{xs.x(at)} V{ys.y(value)}"
    return path + f" H{xs.x(until)}"


def area_path(
    points: Iterable[tuple[datetime, float | None, float | None]], xs: TimeScale, ys: ValueScale
) -> str:
    """The area between a lower and an upper line (an anomaly band, a min-max range);
    periods without both bounds break it into separate shapes."""
    shapes: list[list[tuple[float, float, float]]] = [[]]
    for at, lower, upper in points:
        if lower is None or upper is None:
            if shapes[-1]:
                shapes.append([])
            continue
        shapes[-1].append((xs.x(at), ys.y(lower), ys.y(upper)))
    paths = []
    for shape in shapes:
        if not shape:
            continue
        top = " L".join(f"{x} {upper}" for x, _, upper in shape)
        bottom = " L".join(f"{x} {lower}" for x, lower, _ in reversed(shape))
        paths.append(f"M{top} L{bottom} Z")
    return " ".join(paths)


@dataclass(frozen=True)
class Span:
    """A stretch of time in one state (an alarm state, a person on call)."""

    start: datetime
    end: datetime
    state: str


def spans(
    changes: Sequence[tuple[datetime, str]],
    start: datetime,
    end: datetime,
    initial: str | None = None,
) -> list[Span]:
    """Cut [start, end) into spans from state changes (time, new state) in time order;
    ``initial`` is the state at ``start`` (None: nothing is drawn before the first
    change). Changes outside the range only decide the state at its edges."""
    state = initial
    cursor = start
    out: list[Span] = []
    for at, new_state in changes:
        if at <= start:
            state = new_state
            continue
        if at >= end:
            break
        if state is not None and at > cursor:
            out.append(Span(cursor, at, state))
        state, cursor = new_state, at
    if state is not None and end > cursor:
        out.append(Span(cursor, end, state))
    return out


@dataclass(frozen=True)
class Band:
    """A span drawn as a full-height rectangle. Alarm states take their colour from the
    stylesheet (``state-alarm`` …); other spans (people on call) carry ``color``."""

    x: float
    width: float
    state: str
    label: str
    color: str | None = None


# Colours for spans that are not alarm states, in order (one per person, per policy).
PALETTE = ("#2563eb", "#f59e0b", "#0d9488", "#db2777", "#7c3aed", "#65a30d", "#0891b2", "#dc2626")


def bands(
    stretches: Iterable[Span], xs: TimeScale, colors: Mapping[str, str] | None = None
) -> list[Band]:
    out = []
    for s in stretches:
        x0, x1 = xs.x(s.start), xs.x(s.end)
        if x1 > x0:
            label = (
                f"{s.state.replace('_', ' ')} {s.start:%Y-%m-%d %H:%M} – {s.end:%Y-%m-%d %H:%M} UTC"
            )
            color = colors.get(s.state) if colors else None
            out.append(Band(x0, _round(x1 - x0), s.state, label, color))
    return out


@dataclass(frozen=True)
class Line:
    path: str
    kind: str  # a CSS class: value, planned, capacity, …
    label: str


@dataclass(frozen=True)
class Rule:
    """A horizontal line across the chart at ``y`` (a threshold, a target)."""

    y: float
    kind: str
    label: str


@dataclass
class TimeChart:
    """What ``ops/charts.html``'s ``time_chart`` macro draws, bottom to top: bands, areas,
    grid, rules, lines, dots; then the axes' labels and the legend."""

    xs: TimeScale
    ys: ValueScale
    label: str  # the picture in words, for screen readers
    bands: list[Band] = field(default_factory=list)
    areas: list[Line] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip
    now_x: float | None = None
    testid: str = "chart"
    # False for charts of spans only (alarm states, on-call shifts): no value labels.
    value_axis: bool = True

    @property
    def width(self) -> float:
        return self.xs.width

    @property
    def height(self) -> float:
        return self.ys.height

    @property
    def x_ticks(self) -> list[Tick]:
        return self.xs.ticks()

    @property
    def y_ticks(self) -> list[Tick]:
        return self.ys.ticks() if self.value_axis else []

    @property
    def grid(self) -> str:
        return " ".join(
            f"M0 {_round(t.percent * self.height / 100)} H{self.width}" for t in self.y_ticks
        )

    @property
    def states(self) -> list[tuple[str, str | None]]:
        """(state, colour) of the bands, in first-seen order (for the legend)."""
        return list(dict.fromkeys((b.state, b.color) for b in self.bands))
