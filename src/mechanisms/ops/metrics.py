"""The built-in metrics store: samples in (JSON or Prometheus text), per-minute rollups
with mergeable DDSketches, and queries by statistic over periods for alarms.

A batch is checked whole before anything is stored: a malformed sample, a NaN, a
duplicate with another value, or a new series beyond the cardinality limit refuses the
batch with every problem named, so the sender can fix it and send it again. Samples
that arrive out of order are fine as long as they fall inside the accepted window:
they join their minute's rollup. Samples repeated exactly within a batch count once.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as SketchMessage
from ddsketch.pb.proto import DDSketchProto
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.ops.tables import MetricRollup, MetricSeries

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")
MINUTE = 60
HOUR = 3600
# 1 % relative accuracy: a p99 from the sketch is within 1 % of the exact one.
RELATIVE_ACCURACY = 0.01
MAX_PROBLEMS_SHOWN = 50
STATISTIC_RE = re.compile(r"^(avg|sum|min|max|count|p(\d{1,2}(\.\d+)?|100))$")


@dataclass(frozen=True, slots=True)
class Sample:
    key: str
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    at: datetime


@dataclass
class IngestLimits:
    max_series_per_metric: int = 10_000
    # How far back a sample may be and still join its minute; older ones are refused.
    late_window: timedelta = timedelta(hours=24)
    future_window: timedelta = timedelta(minutes=5)
    max_samples: int = 200_000


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    series_created: int
    buckets: int


def series_key(name: str, labels: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _refuse(problems: list[dict[str, Any]], what: str) -> InvalidInput:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    first = shown[0]
    where = (
        f"sample {first['index']}"
        if "index" in first
        else f"line {first['line']}"
        if "line" in first
        else "the batch"
    )
    return InvalidInput(
        f"{len(problems)} {what} refused; nothing was stored. First: {where}: {first['problem']}",
        code="samples_refused",
        details={"problems": shown, "more": max(0, len(problems) - len(shown))},
    )


def _check(name: Any, labels: Any, value: Any) -> str | None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"metric name {name!r} is not a valid Prometheus metric name"
    if not isinstance(labels, Mapping):
        return "labels must be an object of strings"
    for k, v in labels.items():
        if not isinstance(k, str) or not LABEL_RE.match(k) or k.startswith("__"):
            return f"label name {k!r} is not valid"
        if not isinstance(v, str) or len(v) > 500 or "\x00" in v:
            return f"label {k} must be a string of at most 500 characters"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "value must be a number"
    if not math.isfinite(value):
        return "value must be finite (NaN and infinities are refused)"
    return None


def _instant(raw: Any, now: datetime) -> datetime | str:
    """A sample's time from epoch seconds or ISO 8601; missing means now."""
    if raw is None:
        return now
    if isinstance(raw, bool):
        return "timestamp must be epoch seconds or an ISO 8601 date-time"
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            return "timestamp must be finite"
        try:
            return datetime.fromtimestamp(raw, UTC)
        except (OverflowError, OSError, ValueError):
            return "timestamp is out of range"
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return "timestamp must be epoch seconds or an ISO 8601 date-time"
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return "timestamp must be epoch seconds or an ISO 8601 date-time"


def parse_json(raw: Any, now: datetime, limits: IngestLimits) -> list[Sample]:
    """{"samples": [{"name", "labels", "value", "timestamp"?}, ...]}"""
    items = raw.get("samples") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise InvalidInput('the body must be {"samples": [...]}', details={"field": "samples"})
    if len(items) > limits.max_samples:
        raise InvalidInput(
            f"at most {limits.max_samples} samples per request", details={"field": "samples"}
        )
    samples, problems = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": index, "problem": "a sample must be an object"})
            continue
        name, labels, value = item.get("name"), item.get("labels", {}), item.get("value")
        problem = _check(name, labels, value)
        at = _instant(item.get("timestamp"), now)
        if problem is None and isinstance(at, str):
            problem = at
        if problem is not None:
            problems.append({"index": index, "problem": problem})
            continue
        pairs = tuple(sorted(labels.items()))
        samples.append(Sample(series_key(name, pairs), name, pairs, float(value), at))
    if problems:
        raise _refuse(problems, "sample(s)")
    return samples


def parse_prometheus(text: str, now: datetime, limits: IngestLimits) -> list[Sample]:
    """Prometheus text exposition format, version 0.0.4."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        raise _refuse(_locate_bad_lines(text), "line(s)") from None
    samples, problems = [], []
    for family in families:
        for s in family.samples:
            problem = _check(s.name, s.labels, s.value)
            if problem is not None:
                problems.append(
                    {"series": series_key(s.name, sorted(s.labels.items())), "problem": problem}
                )
                continue
            at = datetime.fromtimestamp(s.timestamp, UTC) if s.timestamp is not None else now
            pairs = tuple(sorted(s.labels.items()))
            samples.append(Sample(series_key(s.name, pairs), s.name, pairs, float(s.value), at))
    if problems:
        raise _refuse(problems, "sample(s)")
    if len(samples) > limits.max_samples:
        raise InvalidInput(
            f"at most {limits.max_samples} samples per request", details={"field": "body"}
        )
    return samples


def _locate_bad_lines(text: str) -> list[dict[str, Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except ValueError as exc:
            problems.append(
                {"line": number, "problem": f"not valid exposition text ({exc}): {line[:120]}"}
            )
    return problems or [{"line": 0, "problem": "not valid exposition text"}]


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _sketch_bytes(sketch: DDSketch) -> bytes:
    return DDSketchProto.to_proto(sketch).SerializeToString()


def sketch_of(data: bytes) -> DDSketch:
    message = SketchMessage()
    message.ParseFromString(data)
    return DDSketchProto.from_proto(message)


def ingest(ctx: Ctx, samples: list[Sample], limits: IngestLimits | None = None) -> IngestResult:
    """Fold samples into per-minute rollups. Checks everything first; stores all or nothing."""
    limits = limits or IngestLimits()
    problems: list[dict[str, Any]] = []
    seen: dict[tuple[str, datetime], float] = {}
    duplicates = 0
    groups: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    names: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}
    oldest, newest = ctx.now - limits.late_window, ctx.now + limits.future_window
    for index, sample in enumerate(samples):
        if not oldest <= sample.at <= newest:
            when = "older than the accepted window" if sample.at < oldest else "in the future"
            problems.append(
                {"index": index, "problem": f"{sample.key} at {sample.at.isoformat()} is {when}"}
            )
            continue
        previous = seen.get((sample.key, sample.at))
        if previous is not None:
            if previous != sample.value:
                problems.append(
                    {
                        "index": index,
                        "problem": f"{sample.key} has two values at {sample.at.isoformat()}",
                    }
                )
            duplicates += 1
            continue
        seen[(sample.key, sample.at)] = sample.value
        groups[(sample.key, _minute(sample.at))].append(sample.value)
        names[sample.key] = (sample.name, sample.labels)
    if problems:
        raise _refuse(problems, "sample(s)")
    ids, created = _series_ids(ctx, names, limits)
    _fold(ctx.session, groups, ids)
    return IngestResult(
        accepted=len(seen), duplicates=duplicates, series_created=created, buckets=len(groups)
    )


def _series_ids(
    ctx: Ctx, names: dict[str, tuple[str, tuple[tuple[str, str], ...]]], limits: IngestLimits
) -> tuple[dict[str, int], int]:
    keys = list(names)
    ids: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        ids.update(
            ctx.session.execute(
                select(MetricSeries.key, MetricSeries.id).where(MetricSeries.key.in_(chunk))
            ).all()
        )
    new = [k for k in keys if k not in ids]
    if not new:
        return ids, 0
    per_metric: dict[str, int] = defaultdict(int)
    for key in new:
        per_metric[names[key][0]] += 1
    problems = []
    for metric, adding in per_metric.items():
        existing = ctx.session.execute(
            select(func.count()).where(MetricSeries.name == metric)
        ).scalar_one()
        if existing + adding > limits.max_series_per_metric:
            problems.append(
                {
                    "metric": metric,
                    "problem": f"{metric} would have {existing + adding} series; the limit is {limits.max_series_per_metric} "
                    "(a label with too many values, such as a user id, is the usual cause)",
                }
            )
    if problems:
        raise _refuse(problems, "metric(s) over the label cardinality limit:")
    rows = [
        MetricSeries(name=names[k][0], labels=dict(names[k][1]), key=k, created_at=ctx.now)
        for k in new
    ]
    ctx.session.add_all(rows)
    ctx.session.flush()
    ids.update({row.key: row.id for row in rows})
    return ids, len(rows)


def _fold(
    session: Session, groups: dict[tuple[str, datetime], list[float]], ids: dict[str, int]
) -> None:
    wanted = {(ids[key], minute): values for (key, minute), values in groups.items()}
    series = sorted({s for s, _ in wanted})
    minutes = sorted({m for _, m in wanted})
    existing: dict[tuple[int, datetime], MetricRollup] = {}
    if wanted:
        for start in range(0, len(series), 500):
            rows = session.execute(
                select(MetricRollup).where(
                    MetricRollup.series_id.in_(series[start : start + 500]),
                    MetricRollup.resolution == MINUTE,
                    MetricRollup.bucket_start >= minutes[0],
                    MetricRollup.bucket_start <= minutes[-1],
                )
            ).scalars()
            existing.update({(r.series_id, r.bucket_start): r for r in rows})
    for (series_id, minute), values in wanted.items():
        row = existing.get((series_id, minute))
        sketch = sketch_of(row.sketch) if row else DDSketch(RELATIVE_ACCURACY)
        for value in values:
            sketch.add(value)
        if row is None:
            session.add(
                MetricRollup(
                    series_id=series_id,
                    resolution=MINUTE,
                    bucket_start=minute,
                    count=len(values),
                    sum=math.fsum(values),
                    min=min(values),
                    max=max(values),
                    sketch=_sketch_bytes(sketch),
                )
            )
        else:
            row.count += len(values)
            row.sum += math.fsum(values)
            row.min, row.max = min(row.min, *values), max(row.max, *values)
            row.sketch = _sketch_bytes(sketch)
    session.flush()


# --- queries ------------------------------------------------------------------------


def check_statistic(statistic: str) -> str:
    if not STATISTIC_RE.match(statistic):
        raise InvalidInput(
            f"statistic {statistic!r} is not one of avg, sum, min, max, count or pNN (e.g. p99, p99.9)",
            details={"field": "statistic"},
        )
    return statistic


@dataclass
class Bucket:
    """Rollups merged over a period (and over series). The sketch is only kept when a
    percentile is asked for: decoding it is the costly part of a query."""

    count: float
    sum: float
    min: float
    max: float
    sketch: DDSketch | None

    def add(
        self, count: float, total: float, low: float, high: float, sketch: DDSketch | None
    ) -> None:
        self.count += count
        self.sum += total
        self.min, self.max = min(self.min, low), max(self.max, high)
        if self.sketch is not None and sketch is not None:
            self.sketch.merge(sketch)

    def value(self, statistic: str) -> float | None:
        if self.count <= 0:
            return None
        if statistic == "avg":
            return self.sum / self.count
        if statistic in ("sum", "min", "max", "count"):
            return getattr(self, statistic)
        if self.sketch is None:
            return None
        found = self.sketch.get_quantile_value(float(statistic[1:]) / 100)
        return None if found is None else min(max(found, self.min), self.max)


def query(
    session: Session,
    name: str,
    match: Mapping[str, str],
    statistic: str,
    start: datetime,
    end: datetime,
    period_seconds: int,
) -> list[tuple[datetime, float | None]]:
    """One value per period in [start, end) for every series of ``name`` whose labels
    include ``match``, merged (percentiles from merged sketches, never averaged)."""
    check_statistic(statistic)
    if period_seconds % MINUTE:
        raise InvalidInput(
            "the period must be a multiple of 60 seconds", details={"field": "period"}
        )
    series_ids = [
        s.id
        for s in session.execute(select(MetricSeries).where(MetricSeries.name == name)).scalars()
        if all(s.labels.get(k) == v for k, v in match.items())
    ]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = start - timedelta(seconds=(start - epoch).total_seconds() % period_seconds)
    periods = []
    cursor = first
    while cursor < end:
        periods.append(cursor)
        cursor += timedelta(seconds=period_seconds)
    buckets: dict[datetime, Bucket] = {}
    for start_chunk in range(0, len(series_ids), 500):
        rows = session.execute(
            select(MetricRollup).where(
                MetricRollup.series_id.in_(series_ids[start_chunk : start_chunk + 500]),
                MetricRollup.bucket_start >= first,
                MetricRollup.bucket_start < end,
            )
        ).scalars()
        for row in rows:
            offset = (row.bucket_start - first).total_seconds() // period_seconds
            period = first + timedelta(seconds=offset * period_seconds)
            bucket = buckets.get(period)
            sketch = sketch_of(row.sketch) if statistic.startswith("p") else None
            if bucket is None:
                buckets[period] = Bucket(row.count, row.sum, row.min, row.max, sketch)
            else:
                bucket.add(row.count, row.sum, row.min, row.max, sketch)
    return [(p, buckets[p].value(statistic) if p in buckets else None) for p in periods]
