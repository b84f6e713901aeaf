"""Alarm rules for the ops mechanism, evaluated the way Amazon CloudWatch evaluates its alarms.

Pure: no database, no HTTP, no clock reads. ``now`` and every timestamp are parameters
(timezone-aware; naive datetimes are refused), so the worker, the tests and a replay of
history all get the same answer.

Four parts:

* **Metric alarms** (``AlarmDefinition`` and ``evaluate``): M out of N datapoints, with
  CloudWatch's treatment of missing data (see ``evaluate`` for the exact rules and
  ``tests/ops/test_alarm_rules.py`` for the documentation's table, row by row).
* **Composite alarms** (``parse_rule``, ``evaluate_rule``, ``evaluate_composites``): the
  AlarmRule language of ``PutCompositeAlarm`` -- ``ALARM(name)``, ``OK(name)``,
  ``INSUFFICIENT_DATA(name)``, ``TRUE``, ``FALSE``, ``AND``, ``OR``, ``NOT``, parentheses.
* **Anomaly bands** (``fit_baseline``): a robust seasonal baseline (median and MAD per
  hour of day, day of week or hour of week) and a band of ``width`` deviations around it.
* **Scheduled silences** (``Silence``, ``is_silenced``): one window or an RFC 5545 RRULE,
  held in wall-clock time of an IANA time zone, so "Saturday 22:00-02:00 Europe/Berlin"
  stays 22:00-02:00 on the days the clocks change.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo

from dateutil import rrule as dateutil_rrule
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from mechanisms.core import inputs, recurrence

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


StaticComparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
AnomalyComparison = Literal[
    "LessThanLowerOrGreaterThanUpperThreshold",
    "GreaterThanUpperThreshold",
    "LessThanLowerThreshold",
]
Comparison = Literal[StaticComparison, AnomalyComparison]
TreatMissingData = Literal["missing", "ignore", "breaching", "notBreaching"]

STATIC_COMPARISONS: frozenset[str] = frozenset(get_args(StaticComparison))
ANOMALY_COMPARISONS: frozenset[str] = frozenset(get_args(AnomalyComparison))

# The words CloudWatch puts in its state reasons.
_PHRASES = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside",
    "GreaterThanUpperThreshold": "greater than the upper bound of",
    "LessThanLowerThreshold": "less than the lower bound of",
}

# The same names as the metrics store (mechanisms.ops.metrics) queries by.
STATISTIC_RE = re.compile(r"^(avg|sum|min|max|count|p(\d{1,2}(\.\d+)?|100))$")

# CloudWatch bounds evaluation_periods x period; we use its 7-day bound.
MAX_EVALUATION_SECONDS = 7 * 24 * 3600

# CloudWatch's documentation states no formula for the evaluation range; its examples
# use a range of 5 for 3 evaluation periods. We use N + 2 unless a definition says more.
EXTRA_RANGE_PERIODS = 2

StrictCount = Annotated[int, Field(strict=True, ge=1)]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]


# --- small input checks ------------------------------------------------------------------


def _aware_utc(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware (got {value.isoformat()})")
    return value.astimezone(UTC)


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name}: {value!r} is too large") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return number


def _zone(name: Any, field_name: str = "time_zone") -> ZoneInfo:
    try:
        return inputs.zone(name)
    except ValueError as exc:
        raise ValueError(f"{field_name}: {exc}") from None


# --- metric alarms -----------------------------------------------------------------------


class AlarmDefinition(BaseModel):
    """One metric alarm, as ``PutMetricAlarm`` defines it.

    ``threshold`` goes with the four static comparisons; ``band_width`` (the number of
    deviations, the second argument of CloudWatch's ``ANOMALY_DETECTION_BAND(m1, 2)``) goes
    with the three anomaly comparisons. ``statistic`` names how the metrics store
    aggregates each period; ``evaluate`` receives the aggregated values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    statistic: str
    comparison: Comparison
    threshold: FiniteFloat | None = Field(default=None, validate_default=True)
    band_width: FiniteFloat | None = Field(default=None, validate_default=True)
    period_seconds: Annotated[int, Field(strict=True, ge=60)]
    evaluation_periods: StrictCount
    datapoints_to_alarm: StrictCount
    treat_missing_data: TreatMissingData = "missing"
    evaluation_range_periods: StrictCount | None = None

    @field_validator("statistic")
    @classmethod
    def _known_statistic(cls, value: str) -> str:
        if not STATISTIC_RE.match(value):
            raise ValueError(
                f"unknown statistic {value!r}: use avg, sum, min, max, count or a percentile "
                "pNN such as p50, p95, p99 or p99.9"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold_fits_comparison(cls, value: float | None, info: ValidationInfo) -> float | None:
        comparison = info.data.get("comparison")
        if comparison in STATIC_COMPARISONS and value is None:
            raise ValueError(f"a threshold is required with {comparison}")
        if comparison in ANOMALY_COMPARISONS and value is not None:
            raise ValueError(f"{comparison} compares with a band: give band_width, not threshold")
        return value

    @field_validator("band_width")
    @classmethod
    def _band_width_fits_comparison(cls, value: float | None, info: ValidationInfo) -> float | None:
        comparison = info.data.get("comparison")
        if comparison in ANOMALY_COMPARISONS:
            if value is None:
                raise ValueError(
                    f"a band_width (number of deviations) is required with {comparison}"
                )
            if value <= 0:
                raise ValueError(f"band_width must be greater than 0, got {value!r}")
        elif comparison in STATIC_COMPARISONS and value is not None:
            raise ValueError(
                f"{comparison} compares with threshold: band_width is for anomaly bands"
            )
        return value

    @field_validator("period_seconds")
    @classmethod
    def _whole_minutes(cls, value: int) -> int:
        if value % 60:
            raise ValueError(f"period_seconds must be a multiple of 60, got {value}")
        return value

    @field_validator("evaluation_periods")
    @classmethod
    def _bounded_evaluation(cls, value: int, info: ValidationInfo) -> int:
        period = info.data.get("period_seconds")
        if period is not None and value * period > MAX_EVALUATION_SECONDS:
            raise ValueError(
                f"evaluation_periods x period_seconds must be at most {MAX_EVALUATION_SECONDS} "
                f"seconds (7 days), got {value} x {period}"
            )
        return value

    @field_validator("datapoints_to_alarm")
    @classmethod
    def _m_within_n(cls, value: int, info: ValidationInfo) -> int:
        n = info.data.get("evaluation_periods")
        if n is not None and value > n:
            raise ValueError(
                f"datapoints_to_alarm (M={value}) must not exceed evaluation_periods (N={n})"
            )
        return value

    @field_validator("evaluation_range_periods")
    @classmethod
    def _range_covers_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        n = info.data.get("evaluation_periods")
        period = info.data.get("period_seconds")
        if value is None or n is None:
            return value
        if value < n:
            raise ValueError(
                f"evaluation_range_periods ({value}) must be at least evaluation_periods ({n})"
            )
        if period is not None and value * period > 2 * MAX_EVALUATION_SECONDS:
            raise ValueError("evaluation_range_periods x period_seconds must be at most 14 days")
        return value

    @property
    def is_anomaly(self) -> bool:
        return self.comparison in ANOMALY_COMPARISONS

    @property
    def range_periods(self) -> int:
        """How many periods back ``evaluate`` looks (CloudWatch's evaluation range)."""
        if self.evaluation_range_periods is not None:
            return self.evaluation_range_periods
        return self.evaluation_periods + EXTRA_RANGE_PERIODS

    def breaches(self, value: float, band: tuple[float, float] | None = None) -> bool:
        """Whether one datapoint is on the wrong side of the threshold (or band)."""
        if self.is_anomaly:
            if band is None:
                raise ValueError(f"band: {self.comparison} needs the band (lower, upper)")
            return band_breached(value, band[0], band[1], self.comparison)
        threshold = self.threshold
        assert threshold is not None  # the validator guarantees it
        match self.comparison:
            case "GreaterThanThreshold":
                return value > threshold
            case "GreaterThanOrEqualToThreshold":
                return value >= threshold
            case "LessThanThreshold":
                return value < threshold
            case _:
                return value <= threshold


def band_breached(value: float, lower: float, upper: float, comparison: str) -> bool:
    if comparison == "LessThanLowerOrGreaterThanUpperThreshold":
        return value < lower or value > upper
    if comparison == "GreaterThanUpperThreshold":
        return value > upper
    if comparison == "LessThanLowerThreshold":
        return value < lower
    raise ValueError(
        f"comparison: {comparison!r} is not an anomaly comparison "
        f"({', '.join(sorted(ANOMALY_COMPARISONS))})"
    )


@dataclass(frozen=True)
class EvaluatedDatapoint:
    """One period of the evaluation. ``value`` is None when the period had no data;
    ``filled`` says treat_missing_data stood in for it (then ``breaching`` is what it
    stood in as); ``breaching`` is None for a missing period nothing stood in for."""

    timestamp: datetime
    value: float | None
    breaching: bool | None
    filled: bool = False
    band: tuple[float, float] | None = None


@dataclass(frozen=True)
class Evaluation:
    new_state: AlarmState
    previous_state: AlarmState
    reason: str
    # The datapoints that decided it, newest first (as CloudWatch lists them).
    evaluated: tuple[EvaluatedDatapoint, ...]
    # How many missing periods treat_missing_data stood in for.
    missing_filled: int
    # The evaluation range: [range_start, range_end), whole periods, UTC.
    range_start: datetime
    range_end: datetime

    @property
    def changed(self) -> bool:
        return self.new_state != self.previous_state

    @property
    def breaching(self) -> tuple[bool | None, ...]:
        return tuple(d.breaching for d in self.evaluated)


def period_start(at: datetime, period_seconds: int) -> datetime:
    """The start of the period that contains ``at``; periods are aligned to the Unix epoch,
    like the metrics store's."""
    step = timedelta(seconds=period_seconds)
    return EPOCH + ((_aware_utc(at, "at") - EPOCH) // step) * step


def evaluation_window(definition: AlarmDefinition, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the periods ``evaluate`` looks at: the last ``range_periods``
    periods that are complete at ``now`` (the period still running is not evaluated)."""
    end = period_start(_aware_utc(now, "now"), definition.period_seconds)
    return end - definition.range_periods * timedelta(seconds=definition.period_seconds), end


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _stamp(at: datetime) -> str:
    return at.strftime("%d/%m/%y %H:%M:%S")


def _listing(points: Iterable[EvaluatedDatapoint], treated_as: str) -> str:
    parts = []
    for p in points:
        if p.filled:
            parts.append(f"missing ({_stamp(p.timestamp)}) treated as {treated_as}")
        else:
            parts.append(f"{p.value!r} ({_stamp(p.timestamp)})")
    return "[" + ", ".join(parts) + "]"


def _limit_text(definition: AlarmDefinition) -> str:
    if definition.is_anomaly:
        return f"the band ({definition.band_width!r} deviations)"
    return f"the threshold ({definition.threshold!r})"


def evaluate(
    definition: AlarmDefinition,
    datapoints_by_period_start: Mapping[datetime, float | None],
    now: datetime,
    current_state: AlarmState | str = AlarmState.INSUFFICIENT_DATA,
    *,
    baseline: AnomalyBaseline | None = None,
) -> Evaluation:
    """The state a metric alarm moves to at ``now``.

    ``datapoints_by_period_start`` maps the start of each period (aligned to the epoch,
    timezone-aware) to the period's value of ``definition.statistic``; a period that is
    absent or maps to None is missing. Anomaly comparisons read each period's band from
    ``baseline``.

    What we implement (CloudWatch's "How alarm state is evaluated when data is missing"):

    1. The evaluation range is the last ``range_periods`` complete periods (N + 2 unless
       ``evaluation_range_periods`` says otherwise; 5 for N = 3 as in the documentation).
    2. At least N real datapoints in the range: the N most recent real ones are evaluated,
       older or not, and treat_missing_data plays no part. ALARM when at least M breach.
    3. No real datapoint in the range: missing -> INSUFFICIENT_DATA, ignore -> the state
       stays, breaching -> ALARM, notBreaching -> OK.
    4. Some, but fewer than N, real datapoints: every real one is evaluated, together with
       the most recent missing periods, as few as make N.
       * breaching / notBreaching: those missing periods count as breaching / not
         breaching; ALARM when at least M of the N breach.
       * missing / ignore: the missing periods count as neither. ALARM when at least M real
         ones breach; otherwise OK when a real one does not breach; otherwise (every real
         one breaches, fewer than M) "missing" goes to ALARM only when the oldest breaching
         datapoint is at least M datapoints old among the N (CloudWatch's rule against
         premature ALARM) and to INSUFFICIENT_DATA otherwise, while "ignore" keeps the state.
    """
    try:
        previous = AlarmState(current_state)
    except ValueError:
        raise ValueError(
            f"current_state: {current_state!r} is not one of OK, ALARM, INSUFFICIENT_DATA"
        ) from None
    if not isinstance(definition, AlarmDefinition):
        raise ValueError("definition: expected an AlarmDefinition")
    if definition.is_anomaly and baseline is None:
        raise ValueError(f"baseline: {definition.comparison} needs an anomaly baseline")
    start, end = evaluation_window(definition, now)
    step = timedelta(seconds=definition.period_seconds)
    if not isinstance(datapoints_by_period_start, Mapping):
        raise ValueError("datapoints_by_period_start: expected a mapping of period start to value")

    values: dict[datetime, float] = {}
    for key, raw in datapoints_by_period_start.items():
        name = f"datapoints_by_period_start[{key!r}]"
        at = _aware_utc(key, name)
        if (at - EPOCH) % step:
            raise ValueError(
                f"{name}: {at.isoformat()} is not the start of a {definition.period_seconds}-second period"
            )
        if raw is None:
            continue
        value = _finite(raw, name)
        if start <= at < end:
            values[at] = value

    slots = [end - (i + 1) * step for i in range(definition.range_periods)]  # newest first
    n, m = definition.evaluation_periods, definition.datapoints_to_alarm
    treat = definition.treat_missing_data

    def real(at: datetime) -> EvaluatedDatapoint:
        value = values[at]
        band = None
        if definition.is_anomaly:
            assert baseline is not None and definition.band_width is not None
            b = baseline.band(at, definition.band_width)
            band = (b.lower, b.upper)
        return EvaluatedDatapoint(at, value, definition.breaches(value, band), band=band)

    present = [real(at) for at in slots if at in values]
    missing_slots = [at for at in slots if at not in values]

    def result(state: AlarmState, reason: str, points: Iterable[EvaluatedDatapoint]) -> Evaluation:
        chosen = tuple(sorted(points, key=lambda p: p.timestamp, reverse=True))
        filled = sum(1 for p in chosen if p.filled)
        return Evaluation(state, previous, reason, chosen, filled, start, end)

    limit = _limit_text(definition)
    phrase = _PHRASES[definition.comparison]
    filled_as = "breaching" if treat == "breaching" else "not breaching"

    def counted(points: list[EvaluatedDatapoint]) -> Evaluation:
        breaching = [p for p in points if p.breaching]
        calm = [p for p in points if p.breaching is False]
        if len(breaching) >= m:
            state, shown, verb = AlarmState.ALARM, breaching, phrase
        else:
            state, shown, verb = AlarmState.OK, calm, f"not {phrase}"
        reason = (
            f"Threshold Crossed: {len(shown)} out of the last {_plural(n, 'datapoint')} "
            f"{_listing(shown, filled_as)} {_was(len(shown))} {verb} {limit}"
        )
        unfilled = sum(1 for p in points if p.breaching is None)
        if unfilled:
            reason += f"; {_plural(unfilled, 'datapoint')} {_was(unfilled)} missing"
        if state != previous:
            need = m if state == AlarmState.ALARM else n - m + 1
            reason += (
                f" (minimum {_plural(need, 'datapoint')} for {previous.value} -> "
                f"{state.value} transition)."
            )
        else:
            reason += "."
        return result(state, reason, points)

    # 2. enough real data: treat_missing_data is not needed.
    if len(present) >= n:
        return counted(present[:n])

    # 3. nothing at all in the range.
    if not present:
        empty = [EvaluatedDatapoint(at, None, None) for at in slots[:n]]
        if treat == "missing":
            reason = (
                f"Insufficient Data: {_plural(len(slots), 'datapoint')} {_was(len(slots))} unknown."
            )
            return result(AlarmState.INSUFFICIENT_DATA, reason, empty)
        if treat == "ignore":
            reason = (
                f"Missing data ignored: no datapoints were received for "
                f"{_plural(len(slots), 'period')}; the state stays {previous.value}."
            )
            return result(previous, reason, empty)
        breach = treat == "breaching"
        filled = [EvaluatedDatapoint(at, None, breach, filled=True) for at in slots[:n]]
        state = AlarmState.ALARM if breach else AlarmState.OK
        reason = (
            f"Threshold Crossed: no datapoints were received for {_plural(len(slots), 'period')} "
            f"and {_plural(n, 'missing datapoint')} {_was(n)} treated as "
            f"[{'Breaching' if breach else 'NonBreaching'}]."
        )
        return result(state, reason, filled)

    # 4. some real data, fewer than N: every real datapoint, plus the most recent missing.
    stand_ins = missing_slots[: n - len(present)]
    if treat in ("breaching", "notBreaching"):
        breach = treat == "breaching"
        points = present + [EvaluatedDatapoint(at, None, breach, filled=True) for at in stand_ins]
        return counted(sorted(points, key=lambda p: p.timestamp, reverse=True))

    points = sorted(
        present + [EvaluatedDatapoint(at, None, None) for at in stand_ins],
        key=lambda p: p.timestamp,
        reverse=True,
    )
    breaching = [p for p in present if p.breaching]
    if len(breaching) >= m or any(not p.breaching for p in present):
        return counted(points)
    oldest_age = max(i + 1 for i, p in enumerate(points) if p.breaching)
    if treat == "missing" and oldest_age >= m:
        reason = (
            f"Threshold Crossed: {len(breaching)} out of the last {_plural(n, 'datapoint')} "
            f"{_listing(breaching, filled_as)} {_was(len(breaching))} {phrase} {limit}, the "
            f"oldest of them {oldest_age} datapoints back (at least {m}), and every more recent "
            f"datapoint is breaching or missing."
        )
        return result(AlarmState.ALARM, reason, points)
    waiting = (
        f"only {len(present)} of the last {_plural(n, 'datapoint')} "
        f"{_was(len(present))} received, {len(breaching)} {phrase} {limit} (fewer than "
        f"{m}) and none within it"
    )
    if treat == "missing":
        return result(AlarmState.INSUFFICIENT_DATA, f"Insufficient Data: {waiting}.", points)
    return result(
        previous, f"Missing data ignored: {waiting}; the state stays {previous.value}.", points
    )


# --- composite alarms --------------------------------------------------------------------

MAX_RULE_LENGTH = 10240  # CloudWatch's limit on AlarmRule
MAX_RULE_DEPTH = 100


class RuleSyntaxError(ValueError):
    """A composite alarm rule that does not parse; ``position`` is the 0-based offset."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.position = position
        self.text = text
        excerpt = text[max(0, position - 20) : position + 20]
        pointer = " " * (min(position, 20)) + "^"
        super().__init__(f"rule: {message} at position {position}\n  {excerpt}\n  {pointer}")


@dataclass(frozen=True)
class Const:
    value: bool

    def __str__(self) -> str:
        return "TRUE" if self.value else "FALSE"


@dataclass(frozen=True)
class StateIs:
    state: AlarmState
    alarm: str

    def __str__(self) -> str:
        escaped = self.alarm.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.state.value}("{escaped}")'


@dataclass(frozen=True)
class Not:
    operand: RuleNode

    def __str__(self) -> str:
        inner = str(self.operand)
        return (
            f"NOT {inner}" if isinstance(self.operand, Const | StateIs | Not) else f"NOT ({inner})"
        )


@dataclass(frozen=True)
class And:
    operands: tuple[RuleNode, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({o})" if isinstance(o, Or) else str(o) for o in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[RuleNode, ...]

    def __str__(self) -> str:
        return " OR ".join(str(o) for o in self.operands)


RuleNode = Const | StateIs | Not | And | Or


@dataclass(frozen=True)
class CompositeRule:
    source: str
    expression: RuleNode
    alarms: frozenset[str] = field(default_factory=frozenset)

    def evaluate(self, states: Mapping[str, AlarmState | str]) -> bool:
        return evaluate_rule(self, states)

    def __str__(self) -> str:
        return str(self.expression)


_FUNCTIONS = {s.value: s for s in AlarmState}
_WORD = re.compile(r"[A-Za-z_]+")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.alarms: set[str] = set()

    def fail(self, message: str, position: int | None = None) -> RuleSyntaxError:
        return RuleSyntaxError(message, self.text, self.pos if position is None else position)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def found(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            return "the end of the rule"
        word = _WORD.match(self.text, self.pos)
        return repr(word.group() if word else self.text[self.pos])

    def word(self) -> str | None:
        self.skip()
        match = _WORD.match(self.text, self.pos)
        return match.group() if match else None

    def take_word(self, expected: str) -> bool:
        if self.word() == expected:
            self.pos += len(expected)
            return True
        return False

    def parse(self) -> CompositeRule:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("the rule is empty")
        expression = self.disjunction()
        self.skip()
        if self.pos < len(self.text):
            raise self.fail(f"expected AND, OR or the end of the rule, found {self.found()}")
        return CompositeRule(self.text, expression, frozenset(self.alarms))

    def disjunction(self) -> RuleNode:
        operands = [self.conjunction()]
        while self.take_word("OR"):
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> RuleNode:
        operands = [self.negation()]
        while self.take_word("AND"):
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> RuleNode:
        count = 0
        while self.take_word("NOT"):
            count += 1
        node = self.primary()
        for _ in range(count):
            node = Not(node)
        return node

    def primary(self) -> RuleNode:
        self.skip()
        start = self.pos
        if self.pos >= len(self.text):
            raise self.fail(
                "expected ALARM(...), OK(...), INSUFFICIENT_DATA(...), TRUE, FALSE, NOT or '(', found the end of the rule"
            )
        if self.text[self.pos] == "(":
            self.depth += 1
            if self.depth > MAX_RULE_DEPTH:
                raise self.fail(f"parentheses nest deeper than {MAX_RULE_DEPTH}")
            self.pos += 1
            node = self.disjunction()
            self.skip()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail(
                    f"expected ')' to close the '(' at position {start}, found {self.found()}"
                )
            self.pos += 1
            self.depth -= 1
            return node
        word = self.word()
        if word in ("TRUE", "FALSE"):
            self.pos += len(word)
            return Const(word == "TRUE")
        if word in _FUNCTIONS:
            self.pos += len(word)
            return StateIs(_FUNCTIONS[word], self.argument(word))
        if word and word != word.upper() and word.upper() in {*_FUNCTIONS, "TRUE", "FALSE", "NOT"}:
            raise self.fail(f"keywords are upper case: write {word.upper()}, not {word}")
        raise self.fail(
            f"expected ALARM(...), OK(...), INSUFFICIENT_DATA(...), TRUE, FALSE, NOT or '(', found {self.found()}"
        )

    def argument(self, function: str) -> str:
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            raise self.fail(f"expected '(' after {function}, found {self.found()}")
        self.pos += 1
        self.skip()
        start = self.pos
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            self.pos += 1
            chars = []
            while True:
                if self.pos >= len(self.text):
                    raise self.fail("the quoted alarm name is not closed", start)
                char = self.text[self.pos]
                if char == "\\" and self.pos + 1 < len(self.text):
                    chars.append(self.text[self.pos + 1])
                    self.pos += 2
                    continue
                if char == '"':
                    self.pos += 1
                    break
                chars.append(char)
                self.pos += 1
            name = "".join(chars)
        else:
            while self.pos < len(self.text) and not (
                self.text[self.pos].isspace() or self.text[self.pos] in '()"'
            ):
                self.pos += 1
            name = self.text[start : self.pos]
        if not name.strip():
            raise self.fail(f"{function}(...) needs an alarm name", start)
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise self.fail("an alarm name must not contain control characters", start)
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] != ")":
            raise self.fail(
                f"expected ')' after the alarm name in {function}(...), found {self.found()}"
            )
        self.pos += 1
        self.alarms.add(name)
        return name


def parse_rule(text: str) -> CompositeRule:
    """Parse a composite alarm rule in CloudWatch's AlarmRule syntax.

    NOT binds tighter than AND, AND tighter than OR. Alarm names may be quoted
    (``ALARM("api latency")``, with ``\\"`` for a quote) or bare (``ALARM(api-latency)``,
    anything up to whitespace or a parenthesis). Keywords are upper case.
    """
    if not isinstance(text, str):
        raise ValueError(f"rule: expected a string, got {type(text).__name__}")
    if len(text) > MAX_RULE_LENGTH:
        raise ValueError(f"rule: at most {MAX_RULE_LENGTH} characters, got {len(text)}")
    if "\x00" in text:
        raise RuleSyntaxError("NUL characters are not allowed", text, text.index("\x00"))
    return _Parser(text).parse()


def _state_of(states: Mapping[str, AlarmState | str], alarm: str) -> AlarmState:
    if alarm not in states:
        raise ValueError(f"states: the rule refers to alarm {alarm!r}, which has no state")
    try:
        return AlarmState(states[alarm])
    except ValueError:
        raise ValueError(f"states[{alarm!r}]: {states[alarm]!r} is not an alarm state") from None


def _evaluate_node(node: RuleNode, states: Mapping[str, AlarmState | str]) -> bool:
    match node:
        case Const(value):
            return value
        case StateIs(state, alarm):
            return _state_of(states, alarm) == state
        case Not(operand):
            return not _evaluate_node(operand, states)
        case And(operands):
            return all(_evaluate_node(o, states) for o in operands)
        case Or(operands):
            return any(_evaluate_node(o, states) for o in operands)
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover


def evaluate_rule(rule: CompositeRule | str, states: Mapping[str, AlarmState | str]) -> bool:
    """Whether the rule holds for these alarm states. Every alarm the rule names must
    have a state in ``states`` (even where AND/OR would not need it), so a typo in a
    name fails loudly instead of quietly never firing."""
    parsed = parse_rule(rule) if isinstance(rule, str) else rule
    for alarm in parsed.alarms:
        _state_of(states, alarm)
    return _evaluate_node(parsed.expression, states)


def composite_order(rules: Mapping[str, CompositeRule | str]) -> list[str]:
    """The composite alarms in an order where each comes after the composites it refers
    to. Raises ValueError naming the cycle when composites refer to each other in a loop."""
    parsed = {name: parse_rule(r) if isinstance(r, str) else r for name, r in rules.items()}
    order: list[str] = []
    done: set[str] = set()
    for root in parsed:
        if root in done:
            continue
        # Iterative depth-first search: (name, iterator over its composite children).
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(sorted(a for a in parsed[root].alarms if a in parsed))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                order.append(finished)
                continue
            if child in on_path:
                cycle = path[path.index(child) :] + [child]
                raise ValueError(f"rules: composite alarms form a cycle: {' -> '.join(cycle)}")
            if child in done:
                continue
            path.append(child)
            on_path.add(child)
            stack.append(iter(sorted(a for a in parsed[child].alarms if a in parsed)))
    return order


def check_composite_cycles(rules: Mapping[str, CompositeRule | str]) -> None:
    composite_order(rules)


def evaluate_composites(
    rules: Mapping[str, CompositeRule | str], states: Mapping[str, AlarmState | str]
) -> dict[str, AlarmState]:
    """The state of every composite alarm: ALARM when its rule holds, OK otherwise.
    Composites may refer to other composites; they are evaluated in dependency order."""
    known: dict[str, AlarmState | str] = dict(states)
    result: dict[str, AlarmState] = {}
    parsed = {name: parse_rule(r) if isinstance(r, str) else r for name, r in rules.items()}
    for name in composite_order(parsed):
        state = AlarmState.ALARM if evaluate_rule(parsed[name], known) else AlarmState.OK
        known[name] = result[name] = state
    return result


# --- anomaly bands -----------------------------------------------------------------------

Seasonality = Literal["none", "hour_of_day", "day_of_week", "hour_of_week"]
# For normally distributed data, 1.4826 x MAD estimates the standard deviation.
MAD_TO_SIGMA = 1.4826
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class BucketStats:
    center: float  # median
    deviation: float  # 1.4826 x median absolute deviation, at least min_deviation
    samples: int


@dataclass(frozen=True)
class Band:
    lower: float
    center: float
    upper: float
    bucket: str  # which seasonal bucket gave the baseline, e.g. "Saturday 14:00" or "all"
    fallback: bool  # True when the bucket had too little data and a coarser one stood in


@dataclass(frozen=True)
class BandCheck:
    breaching: bool
    value: float
    band: Band


def _robust(values: list[float], min_deviation: float) -> BucketStats:
    center = statistics.median(values)
    mad = statistics.median(abs(v - center) for v in values)
    return BucketStats(center, max(MAD_TO_SIGMA * mad, min_deviation), len(values))


def _label(key: tuple[int, ...]) -> str:
    if len(key) == 2:
        return f"{_DAYS[key[0]]} {key[1]:02d}:00"
    if len(key) == 1:
        return f"hour {key[0]:02d}" if key[0] >= 0 else _DAYS[-key[0] - 1]
    return "all"


@dataclass(frozen=True)
class AnomalyBaseline:
    """A seasonal baseline fitted by ``fit_baseline``. Buckets are in ``time_zone``'s
    wall-clock time (so a business-hours peak stays at 09:00 across DST)."""

    seasonality: Seasonality
    time_zone: str
    min_bucket_samples: int
    overall: BucketStats
    # key -> stats. Keys: (weekday, hour) for hour_of_week; (hour,) for hour_of_day;
    # (-1 - weekday,) for day_of_week.
    buckets: Mapping[tuple[int, ...], BucketStats]

    def _keys(self, at: datetime) -> list[tuple[int, ...]]:
        local = _aware_utc(at, "at").astimezone(ZoneInfo(self.time_zone))
        if self.seasonality == "hour_of_week":
            return [(local.weekday(), local.hour), (local.hour,)]
        if self.seasonality == "hour_of_day":
            return [(local.hour,)]
        if self.seasonality == "day_of_week":
            return [(-1 - local.weekday(),)]
        return []

    def stats_at(self, at: datetime) -> tuple[BucketStats, str, bool]:
        """The stats used at ``at``: the finest bucket with enough samples (hour of week,
        then hour of day), else every sample."""
        for i, key in enumerate(self._keys(at)):
            stats = self.buckets.get(key)
            if stats is not None and stats.samples >= self.min_bucket_samples:
                return stats, _label(key), i > 0
        return self.overall, "all", self.seasonality != "none"

    def band(self, at: datetime, width: float) -> Band:
        width = _finite(width, "width")
        if width <= 0:
            raise ValueError(f"width: must be greater than 0, got {width!r}")
        stats, label, fallback = self.stats_at(at)
        spread = width * stats.deviation
        return Band(stats.center - spread, stats.center, stats.center + spread, label, fallback)

    def check(self, at: datetime, value: float, comparison: str, width: float) -> BandCheck:
        value = _finite(value, "value")
        band = self.band(at, width)
        return BandCheck(band_breached(value, band.lower, band.upper, comparison), value, band)


def fit_baseline(
    history: Iterable[tuple[datetime, float]],
    seasonality: Seasonality = "hour_of_day",
    *,
    time_zone: str = "UTC",
    min_bucket_samples: int = 8,
    min_deviation: float = 0.0,
) -> AnomalyBaseline:
    """Fit a robust seasonal baseline: the median and the scaled median absolute deviation
    of the values in each seasonal bucket, and of all values for buckets with fewer than
    ``min_bucket_samples`` samples. ``min_deviation`` keeps a flat history from giving a
    band of width zero."""
    if seasonality not in get_args(Seasonality):
        raise ValueError(
            f"seasonality: {seasonality!r} is not one of {', '.join(get_args(Seasonality))}"
        )
    zone = _zone(time_zone)
    if (
        isinstance(min_bucket_samples, bool)
        or not isinstance(min_bucket_samples, int)
        or min_bucket_samples < 1
    ):
        raise ValueError(
            f"min_bucket_samples: must be an integer of at least 1, got {min_bucket_samples!r}"
        )
    min_deviation = _finite(min_deviation, "min_deviation")
    if min_deviation < 0:
        raise ValueError(f"min_deviation: must not be negative, got {min_deviation!r}")
    groups: dict[tuple[int, ...], list[float]] = {}
    everything: list[float] = []
    for i, item in enumerate(history):
        try:
            at, raw = item
        except (TypeError, ValueError):
            raise ValueError(f"history[{i}]: expected a (timestamp, value) pair") from None
        local = _aware_utc(at, f"history[{i}]").astimezone(zone)
        value = _finite(raw, f"history[{i}]")
        everything.append(value)
        if seasonality == "hour_of_week":
            keys: list[tuple[int, ...]] = [(local.weekday(), local.hour), (local.hour,)]
        elif seasonality == "hour_of_day":
            keys = [(local.hour,)]
        elif seasonality == "day_of_week":
            keys = [(-1 - local.weekday(),)]
        else:
            keys = []
        for key in keys:
            groups.setdefault(key, []).append(value)
    if not everything:
        raise ValueError("history: needs at least one datapoint")
    return AnomalyBaseline(
        seasonality=seasonality,
        time_zone=time_zone,
        min_bucket_samples=min_bucket_samples,
        overall=_robust(everything, min_deviation),
        buckets={key: _robust(values, min_deviation) for key, values in groups.items()},
    )


# --- scheduled silences ------------------------------------------------------------------

# Days in 400 Gregorian years (a multiple of 7): the calendar, weekdays included, repeats
# every 400 years, so a recurrence repeats every 400 x k years for some small k.
_UNITS_PER_400_YEARS = {
    "YEARLY": 400,
    "MONTHLY": 4800,
    "WEEKLY": 20871,
    "DAILY": 146097,
    "HOURLY": 146097 * 24,
    "MINUTELY": 146097 * 1440,
    "SECONDLY": 146097 * 86400,
}
MAX_RRULE_LENGTH = 1000


def _rule_parts(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for part in text.split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().upper()] = value.strip()
    return parts


_DAY_FILTERS = ("BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYEASTER", "WKST")


def _scan(rule: dateutil_rrule.rrule, freq: str, interval: int, start: datetime) -> bool:
    """Whether ``rule`` (without COUNT and UNTIL) has any occurrence.

    dateutil looks for the next occurrence until year 9999, which takes seconds for a
    daily rule that never matches. Occurrences repeat every ``cycle`` years, so we move
    the start by whole cycles close to year 9999 and let dateutil scan one or two cycles."""
    probe = rule.replace(count=None, until=None)
    units = _UNITS_PER_400_YEARS.get(freq)
    if units:
        cycle = 400 * (interval // math.gcd(interval, units))
        latest = 9998 - cycle
        if cycle <= 4000 and latest > start.year:
            year = start.year + ((latest - start.year) // cycle) * cycle
            probe = probe.replace(dtstart=start.replace(year=year))
    try:
        return next(iter(probe), None) is not None
    except (OverflowError, ValueError):
        return False


def _ever_matches(rule: dateutil_rrule.rrule, parts: dict[str, str], start: datetime) -> bool:
    freq = parts.get("FREQ", "").upper()
    interval = int(parts.get("INTERVAL") or "1")
    if freq in ("HOURLY", "MINUTELY", "SECONDLY"):
        # A sub-daily rule can only match on days its day filters allow; checking those
        # with a daily rule first is fast even when the sub-daily cycle is long.
        day_rule = ";".join(
            ["FREQ=DAILY", *(f"{k}={v}" for k, v in parts.items() if k in _DAY_FILTERS)]
        )
        try:
            days = dateutil_rrule.rrulestr(
                day_rule, dtstart=start.replace(hour=0, minute=0, second=0)
            )
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError):
            days = None
        if isinstance(days, dateutil_rrule.rrule) and not _scan(days, "DAILY", 1, start):
            return False
    return _scan(rule, freq, interval, start)


def _compile_rrule(text: str, start: datetime, zone: ZoneInfo) -> dateutil_rrule.rrule:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body:
        raise ValueError("rrule: empty; give a rule such as FREQ=WEEKLY;BYDAY=SA, or leave it out")
    if len(body) > MAX_RRULE_LENGTH:
        raise ValueError(f"rrule: at most {MAX_RRULE_LENGTH} characters")
    if any(c in body for c in "\r\n:") or "DTSTART" in body.upper():
        raise ValueError(
            "rrule: give one RRULE line (such as FREQ=WEEKLY;BYDAY=SA) without DTSTART, "
            "EXDATE or RDATE; the first occurrence is 'start'"
        )
    shown = body
    fine = recurrence.fine_frequency(body)
    if fine:
        raise ValueError(
            f"rrule: FREQ={fine} is refused; a silence recurs at most a few times a day "
            "(FREQ=HOURLY or coarser)"
        )
    parts = _rule_parts(body)
    count = parts.get("COUNT")
    if count is not None and not (count.isdigit() and 1 <= int(count) <= recurrence.MAX_COUNT):
        raise ValueError(f"rrule: COUNT must be a whole number from 1 to {recurrence.MAX_COUNT}")
    interval = parts.get("INTERVAL")
    if interval is not None and not (interval.isdigit() and int(interval) >= 1):
        raise ValueError(f"rrule: INTERVAL must be a whole number of at least 1, got {interval!r}")
    until = parts.get("UNTIL", "")
    if until.upper().endswith("Z"):
        # RFC 5545: UNTIL is in UTC when the start has a time zone; dateutil wants it in
        # the same (wall-clock) terms as the start.
        try:
            instant = datetime.strptime(until.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(
                f"rrule: UNTIL={until} is not a date-time like 20261231T230000Z"
            ) from None
        local = instant.astimezone(zone).replace(tzinfo=None).strftime("%Y%m%dT%H%M%S")
        body = ";".join(
            f"UNTIL={local}" if p.strip().upper().startswith("UNTIL=") else p
            for p in body.split(";")
        )
    try:
        rule = dateutil_rrule.rrulestr(body, dtstart=start)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise ValueError(f"rrule: not a valid recurrence rule ({exc})") from None
    if not isinstance(rule, dateutil_rrule.rrule):  # pragma: no cover - single line only
        raise ValueError("rrule: give a single RRULE")
    if not _ever_matches(rule, parts, start):
        raise ValueError(f"rrule: {shown} never matches any date")
    try:
        first = next(iter(rule), None)
    except (OverflowError, ValueError):
        first = None
    if first is None:
        raise ValueError(
            f"rrule: {shown} has no occurrence (UNTIL or COUNT ends it before it matches)"
        )
    if recurrence.too_dense(rule, start):
        raise ValueError(
            f"rrule: {shown} recurs more than {recurrence.MAX_OCCURRENCES_PER_YEAR} times a "
            "year; a silence recurs at most a few times a day"
        )
    return rule


class Silence(BaseModel):
    """A window during which alarms do not page.

    ``start`` and ``end`` are wall-clock times in ``time_zone`` (aware values are
    converted to it); with ``rrule`` the window repeats at every occurrence, the first
    at ``start``, each lasting ``end - start`` of wall-clock time. ``alarms`` limits the
    silence to those alarm names; empty means every alarm.

    Wall-clock times that do not exist (the hour skipped when clocks go forward) are
    read with the offset before the change, so they fall just after it; times that
    happen twice (when clocks go back) are read as the first of the two.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""
    time_zone: str = "UTC"
    start: datetime
    end: datetime
    rrule: str | None = None
    alarms: tuple[str, ...] = ()

    _rule: dateutil_rrule.rrule | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("name must be at most 200 characters, without control characters")
        return value

    @field_validator("alarms")
    @classmethod
    def _alarm_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, alarm in enumerate(value):
            if not alarm.strip() or any(ord(c) < 32 or ord(c) == 127 for c in alarm):
                raise ValueError(f"alarms[{i}] must be a non-empty name without control characters")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value.tzinfo is None:
            return value
        zone_name = info.data.get("time_zone")
        if zone_name is None:
            return value.replace(tzinfo=None)
        return value.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError(f"end ({value.isoformat()}) must be after start ({start.isoformat()})")
        return value

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        start, zone_name = info.data.get("start"), info.data.get("time_zone")
        if start is None or zone_name is None:
            return value
        end = info.data.get("end")
        if end is not None and end - start > recurrence.MAX_DURATION:
            raise ValueError(
                f"a recurring silence's window lasts at most {recurrence.MAX_DURATION.days} days"
            )
        _compile_rrule(value, start, ZoneInfo(zone_name))
        return value

    def model_post_init(self, context: Any) -> None:
        if self.rrule is not None:
            self._rule = _compile_rrule(self.rrule, self.start, ZoneInfo(self.time_zone))

    def _instant(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=ZoneInfo(self.time_zone)).astimezone(UTC)

    def window_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The window [start, end) in UTC that contains ``at``, or None."""
        moment = _aware_utc(at, "at")
        length = self.end - self.start
        if self._rule is None:
            starts: Iterable[datetime] = [self.start]
        else:
            local = moment.astimezone(ZoneInfo(self.time_zone)).replace(tzinfo=None)
            try:
                low = local - length - timedelta(days=1)
            except OverflowError:
                low = datetime.min
            try:
                high = local + timedelta(days=1)
            except OverflowError:
                high = datetime.max
            starts = recurrence.between(self._rule, low, high)
        for wall in starts:
            try:
                window = (self._instant(wall), self._instant(wall + length))
            except OverflowError:
                continue
            if window[0] <= moment < window[1]:
                return window
        return None

    def next_window(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The first window [start, end) in UTC that starts after ``at``, or None when no
        window is left."""
        moment = _aware_utc(at, "at")
        length = self.end - self.start
        if self._rule is None:
            walls: Iterable[datetime] = [self.start]
        else:
            local = moment.astimezone(ZoneInfo(self.time_zone)).replace(tzinfo=None)
            try:
                # A day back: the wall clock and the instant order differently around DST.
                after = local - timedelta(days=1)
                walls = recurrence.starting_near(self._rule, after).xafter(after, count=400)
            except OverflowError:
                return None
        for wall in walls:
            try:
                window = (self._instant(wall), self._instant(wall + length))
            except OverflowError:
                return None
            if window[0] > moment:
                return window
        return None

    def applies_to(self, alarm: str | None) -> bool:
        return not self.alarms or alarm is None or alarm in self.alarms


def is_silenced(
    silences: Iterable[Silence], at: datetime, alarm: str | None = None
) -> Silence | None:
    """The first silence whose window contains ``at`` (and that covers ``alarm``, when
    given), or None."""
    moment = _aware_utc(at, "at")
    for silence in silences:
        if silence.applies_to(alarm) and silence.window_at(moment) is not None:
            return silence
    return None
