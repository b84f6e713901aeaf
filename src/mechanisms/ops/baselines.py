"""How an anomaly-band alarm learns its band: the settings stored with its definition
(``definition["baseline"]``) and a per-process cache of fitted baselines.

The band of an anomaly alarm (CloudWatch's ``ANOMALY_DETECTION_BAND(m, width)``) comes from
``alarm_rules.fit_baseline`` over the alarm's own statistic, one value per period, over the
last ``days`` days of the metrics store. The evaluator fits every anomaly alarm of a tick
from one read of the rollups, and only once an hour per (series, statistic, period,
settings): a baseline of days moves little within an hour, and the fit is the expensive part.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mechanisms.core import inputs
from mechanisms.core.errors import InvalidInput
from mechanisms.ops import alarm_rules
from mechanisms.ops.alarm_rules import AlarmDefinition, AnomalyBaseline

BASELINE_KEY = "baseline"


class BaselineSettings(BaseModel):
    """How the baseline is fitted: the seasonal buckets (in ``time_zone``'s wall clock), how
    many days of history, how many values a bucket needs before it is trusted (else the
    coarser bucket stands in), and a floor under the deviation so a flat history does not
    give a band of width zero."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seasonality: alarm_rules.Seasonality = "hour_of_day"
    days: Annotated[int, Field(strict=True, ge=1, le=28)] = 14
    time_zone: str = "UTC"
    min_bucket_samples: Annotated[int, Field(strict=True, ge=1, le=10_000)] = 8
    min_deviation: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        inputs.zone(value)
        return value


def _invalid(exc: ValidationError, prefix: str) -> InvalidInput:
    first = exc.errors()[0]
    field = (prefix + ".".join(str(p) for p in first["loc"])).rstrip(".")
    message = first["msg"].removeprefix("Value error, ")
    return InvalidInput(f"{field}: {message}", details={"field": field})


def validated(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A submitted metric-alarm definition as it is stored: the AlarmDefinition, with the
    baseline settings for an anomaly comparison (defaults filled in). InvalidInput names
    the field."""
    fields = dict(raw)
    baseline = fields.pop(BASELINE_KEY, None)
    try:
        definition = AlarmDefinition.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc, "definition.") from None
    stored = definition.model_dump(mode="json")
    if not definition.is_anomaly:
        if baseline is not None:
            raise InvalidInput(
                "definition.baseline: only an anomaly comparison has a baseline",
                details={"field": "definition.baseline"},
            )
        return stored
    try:
        settings = BaselineSettings.model_validate(baseline or {})
    except ValidationError as exc:
        raise _invalid(exc, "definition.baseline.") from None
    return {**stored, BASELINE_KEY: settings.model_dump(mode="json")}


def split(stored: Mapping[str, Any]) -> tuple[AlarmDefinition, BaselineSettings | None]:
    """A stored definition as the domain's AlarmDefinition and its baseline settings."""
    fields = dict(stored)
    baseline = fields.pop(BASELINE_KEY, None)
    definition = AlarmDefinition.model_validate(fields)
    if not definition.is_anomaly:
        return definition, None
    return definition, BaselineSettings.model_validate(baseline or {})


def history_window(settings: BaselineSettings, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): the whole hours of history the fit reads. It ends at the start of the
    current hour, so the minutes being judged do not teach the band to accept them."""
    end = now.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=settings.days), end


class Cache:
    """Fitted baselines by key, each good for the hour it was fitted in (``None`` when the
    history had no value at all: the alarm's datapoints then count as missing)."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._fits: dict[Any, tuple[datetime, AnomalyBaseline | None]] = {}

    def get(self, key: Any, hour: datetime) -> tuple[bool, AnomalyBaseline | None]:
        found = self._fits.get(key)
        if found is None or found[0] != hour:
            return False, None
        return True, found[1]

    def put(self, key: Any, hour: datetime, baseline: AnomalyBaseline | None) -> None:
        if len(self._fits) >= self.limit:
            self._fits.clear()
        self._fits[key] = (hour, baseline)

    def clear(self) -> None:
        self._fits.clear()


def fit(values: list[tuple[datetime, float]], settings: BaselineSettings) -> AnomalyBaseline | None:
    if not values:
        return None
    return alarm_rules.fit_baseline(
        values,
        settings.seasonality,
        time_zone=settings.time_zone,
        min_bucket_samples=settings.min_bucket_samples,
        min_deviation=settings.min_deviation,
    )
