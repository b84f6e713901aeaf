"""The built-in metrics store: samples in (JSON or Prometheus text), per-minute rollups
with mergeable DDSketches, and queries by statistic over periods for alarms.

A batch is checked whole before anything is stored: a malformed sample, a NaN, a
duplicate with another value, or a new series beyond the cardinality limit refuses the
batch with every problem named, so the sender can fix it and send it again. Samples
that arrive out of order are fine as long as they fall inside the accepted window:
they join their minute's rollup. Samples repeated exactly within a batch count once.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as SketchMessage
from ddsketch.pb.ddsketch_pb2 import IndexMapping
from ddsketch.pb.proto import DDSketchProto, KeyMappingProto
from ddsketch.store import DenseStore
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from mechanisms.core import inputs
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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MINUTE_US = MINUTE * 1_000_000
# datetime.fromtimestamp takes every epoch second in [0, 1e11) (up to the year 5138); in
# that range a sample's microsecond is computed the way it computes it (whole seconds,
# then the fraction's microseconds rounded half to even), without building a datetime.
_FAST_EPOCH_LIMIT = 1e11
# A sample without labels; only ever read.
_NO_LABELS: dict[str, str] = {}

Labels = tuple[tuple[str, str], ...]


class Sample(NamedTuple):
    """One checked sample. ``us`` is its instant in microseconds since the epoch (what
    ingest compares and groups by); ``given`` is the datetime it came with when it came
    with one (an ISO 8601 string, or no timestamp: now), so messages show it as given."""

    key: str
    name: str
    labels: Labels
    value: float
    us: int
    given: datetime | None = None

    @property
    def at(self) -> datetime:
        return self.given if self.given is not None else EPOCH + timedelta(microseconds=self.us)

    @classmethod
    def of(cls, key: str, name: str, labels: Labels, value: float, at: datetime) -> Sample:
        return cls(key, name, labels, value, _us(at), at)


class Samples(Sequence[Sample]):
    """Checked samples, column by column: a batch holds up to 200,000 of them, and a
    list of that many small objects costs more in the garbage collector's passes than
    in building them. Reads as a sequence of ``Sample``; ``ingest`` reads the columns."""

    __slots__ = ("given", "keys", "series", "us", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[float] = []
        self.us: list[int] = []
        self.given: dict[int, datetime] = {}  # by position, for the few that have one
        self.series: dict[str, tuple[str, Labels]] = {}  # key -> (name, labels)

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> Samples:
        batch = cls()
        for s in samples:
            batch.append(s)
        return batch

    def append(self, sample: Sample) -> None:
        if sample.given is not None:
            self.given[len(self.keys)] = sample.given
        self.keys.append(sample.key)
        self.values.append(sample.value)
        self.us.append(sample.us)
        self.series[sample.key] = (sample.name, sample.labels)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        key = self.keys[index]
        name, labels = self.series[key]
        index = index % len(self.keys)
        return Sample(key, name, labels, self.values[index], self.us[index], self.given.get(index))


def _us(at: datetime) -> int:
    return (at - EPOCH) // _ONE_US


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


def _check_series(name: Any, labels: Any) -> str | None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"metric name {name!r} is not a valid Prometheus metric name"
    if not isinstance(labels, Mapping):
        return "labels must be an object of strings"
    for k, v in labels.items():
        if not isinstance(k, str) or not LABEL_RE.match(k) or k.startswith("__"):
            return f"label name {k!r} is not valid"
        if not isinstance(v, str) or len(v) > 500:
            return f"label {k} must be a string of at most 500 characters"
        try:
            inputs.text(v)
        except ValueError as exc:
            return f"label {k} {exc}"
    return None


def _check_value(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "value must be a number"
    if not math.isfinite(value):
        return "value must be finite (NaN and infinities are refused)"
    return None


def _check(name: Any, labels: Any, value: Any) -> str | None:
    return _check_series(name, labels) or _check_value(value)


def _series(batch: Samples, known: dict[Any, str], name: Any, labels: Any, memo: Any) -> str:
    """The series key of a valid name and labels (remembered under ``memo`` when there is
    one), or the problem with them, prefixed by a NUL (which no key holds)."""
    problem = _check_series(name, labels)
    if problem is not None:
        return "\x00" + problem
    pairs = tuple(sorted(labels.items()))
    key = series_key(name, pairs)
    batch.series[key] = (name, pairs)
    if memo is not None:
        known[memo] = key
    return key


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


def parse_json(raw: Any, now: datetime, limits: IngestLimits) -> Samples:
    """{"samples": [{"name", "labels", "value", "timestamp"?}, ...]}"""
    items = raw.get("samples") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise InvalidInput('the body must be {"samples": [...]}', details={"field": "samples"})
    if len(items) > limits.max_samples:
        raise InvalidInput(
            f"at most {limits.max_samples} samples per request", details={"field": "samples"}
        )
    batch = Samples()
    problems: list[dict[str, Any]] = []
    # Series found again by (name, *label items): most samples share a few series, so
    # each is checked and keyed once. Only valid series are remembered.
    known: dict[Any, str] = {}
    add_key, add_value, add_us = batch.keys.append, batch.values.append, batch.us.append
    isfinite, limit = math.isfinite, _FAST_EPOCH_LIMIT
    # This loop runs once per sample, up to 200,000 times a request: the common case (a
    # series seen before, a float value, epoch seconds) calls no function of ours.
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": index, "problem": "a sample must be an object"})
            continue
        get = item.get
        name, labels = get("name"), get("labels", _NO_LABELS)
        memo = key = None
        if name.__class__ is str and labels.__class__ is dict:
            memo = (name, *labels.items())
            try:
                key = known.get(memo)
            except TypeError:  # a label value that cannot be hashed (so not a string)
                memo = None
        if key is None:
            key = _series(batch, known, name, labels, memo)
            if key[0] == "\x00":
                problems.append({"index": index, "problem": key[1:]})
                continue
        value = get("value")
        kind = value.__class__
        if kind is not float:
            problem = None if kind is int and isfinite(value) else _check_value(value)
            if problem is not None:
                problems.append({"index": index, "problem": problem})
                continue
            value = float(value)
        elif not isfinite(value):
            problems.append({"index": index, "problem": _check_value(value)})
            continue
        stamp = get("timestamp")
        kind = stamp.__class__
        if kind is float and 0.0 <= stamp < limit:
            whole = int(stamp)  # stamp - whole is exact: no rounding before round()
            add_us(whole * 1_000_000 + round((stamp - whole) * 1e6))
        elif kind is int and 0 <= stamp < limit:
            add_us(stamp * 1_000_000)
        else:
            at = _instant(stamp, now)
            if isinstance(at, str):
                problems.append({"index": index, "problem": at})
                continue
            batch.given[len(batch.keys)] = at
            add_us(_us(at))
        add_key(key)
        add_value(value)
    if problems:
        raise _refuse(problems, "sample(s)")
    return batch


# A sample line in its plainest and by far most common form: name{label="value",...}
# value [timestamp], single spaces, no escapes. Such a line is parsed here; any other
# line goes to prometheus_client's own parser, so every line means what it means there.
_PROM_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
_PROM_SAMPLE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{({_PROM_LABEL}(?:,{_PROM_LABEL})*)?\}})?"
    r" ([-+.0-9A-Za-z]+)(?: ([-+.0-9A-Za-z]+))?"
)
_PROM_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')
_UNSEEN = object()


def _prom_number(token: str) -> int | float | None:
    """What prometheus_client makes of a number (an int, else a float), or None when it
    refuses it."""
    if "." not in token:  # int() refuses any "."
        try:
            return int(token)
        except ValueError:
            pass
    try:
        return float(token)
    except ValueError:
        return None


def _prom_labels(inner: str | None) -> dict[str, str] | None:
    """The labels between a plain line's braces, or None to let prometheus_client decide
    (a repeated or reserved label name)."""
    if not inner:
        return {}
    pairs = _PROM_PAIR.findall(inner)
    labels = dict(pairs)
    if len(labels) != len(pairs) or any(k.startswith("__") for k in labels):
        return None
    return labels


@dataclass
class _PromColumns:
    """Parsed samples column by column: name, labels, value, timestamp, and the text
    between the braces (None for a line the library parsed)."""

    names: list[str] = field(default_factory=list)
    labels: list[dict[str, str]] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    stamps: list[Any] = field(default_factory=list)
    inners: list[str | None] = field(default_factory=list)

    def extend(self, other: _PromColumns) -> None:
        self.names += other.names
        self.labels += other.labels
        self.values += other.values
        self.stamps += other.stamps
        self.inners += other.inners


def _prom_samples(text: str) -> _PromColumns:
    """Every sample, in order, exactly as ``prometheus_client.parser.
    text_string_to_metric_families`` gives them (its walk over metric families, counters'
    ``_total`` naming, a ValueError for what it refuses), but with plain sample lines
    matched by one regular expression instead of parsed character by character, and the
    labels of each distinct label text parsed once."""
    out = _PromColumns()
    try:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.parser import _parse_sample, _split_quoted, _unquote_unescape
        from prometheus_client.validation import _is_valid_legacy_metric_name
    except ImportError:  # another prometheus_client: its public parser, as it is
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.extend(_PromColumns([s.name], [s.labels], [s.value], [s.timestamp], [None]))
        return out

    def build(name: str, typ: str, family: _PromColumns) -> None:
        if typ == "counter":
            if name.endswith("_total"):
                name = name[:-6]
            else:
                family.names = [n + "_total" for n in family.names]
        Metric(name, "", typ)  # refuses what the library refuses (HELP text aside)
        out.extend(family)

    fullmatch, labels_of = _PROM_SAMPLE.fullmatch, {}
    name, typ = "", "untyped"
    family = _PromColumns()
    allowed_names: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("#"):
            parts = _split_quoted(line, None, 3)
            if len(parts) < 2:
                continue
            candidate_name, quoted = "", False
            if len(parts) > 2:
                if parts[1] != "TYPE" and parts[1] != "HELP":
                    continue
                candidate_name, quoted = _unquote_unescape(parts[2])
                if not quoted and not _is_valid_legacy_metric_name(candidate_name):
                    raise ValueError
            if parts[1] == "HELP":
                if candidate_name != name:
                    if name != "":
                        build(name, typ, family)
                    name, typ, family = candidate_name, "untyped", _PromColumns()
                    allowed_names = [candidate_name]
            elif parts[1] == "TYPE":
                if len(parts) < 4:
                    raise ValueError
                if candidate_name != name:
                    if name != "":
                        build(name, typ, family)
                    name, family = candidate_name, _PromColumns()
                typ = parts[3]
                suffixes = {
                    "counter": [""],
                    "gauge": [""],
                    "summary": ["_count", "_sum", ""],
                    "histogram": ["_count", "_sum", "_bucket"],
                }.get(typ, [""])
                allowed_names = [name + n for n in suffixes]
            continue
        if line == "":
            continue
        sample_name = labels = None
        match = fullmatch(line)
        if match is not None:
            sample_name, inner, value_text, stamp_text = match.groups()
            labels = labels_of.get(inner, _UNSEEN)
            if labels is _UNSEEN:
                labels = labels_of[inner] = _prom_labels(inner)
            value = _prom_number(value_text)
            stamp = None if stamp_text is None else _prom_number(stamp_text)
            if labels is None or value is None or (stamp is None and stamp_text is not None):
                labels = None
            else:
                inner = inner or ""
                stamp = None if stamp is None else stamp / 1000
        if labels is None:
            s = _parse_sample(line)
            sample_name, labels, value, stamp, inner = (
                s.name,
                s.labels,
                s.value,
                s.timestamp,
                None,
            )
        if sample_name not in allowed_names:
            # not of the family being read: that family ends, and this is one of its own
            if name != "":
                build(name, typ, family)
            name, typ, allowed_names, family = "", "untyped", [], _PromColumns()
            build(
                sample_name, typ, _PromColumns([sample_name], [labels], [value], [stamp], [inner])
            )
        else:
            family.names.append(sample_name)
            family.labels.append(labels)
            family.values.append(value)
            family.stamps.append(stamp)
            family.inners.append(inner)
    if name != "":
        build(name, typ, family)
    return out


def parse_prometheus(text: str, now: datetime, limits: IngestLimits) -> Samples:
    """Prometheus text exposition format, version 0.0.4."""
    try:
        parsed = _prom_samples(text)
    except ValueError:
        raise _refuse(_locate_bad_lines(text), "line(s)") from None
    batch = Samples()
    problems: list[dict[str, Any]] = []
    known: dict[Any, str] = {}
    add_key, add_value, add_us = batch.keys.append, batch.values.append, batch.us.append
    isfinite, limit, now_us = math.isfinite, _FAST_EPOCH_LIMIT, _us(now)
    columns = zip(
        parsed.names, parsed.labels, parsed.values, parsed.stamps, parsed.inners, strict=True
    )
    for name, labels, value, stamp, inner in columns:
        # A metric name and the text between its braces always mean the same series.
        memo = key = None
        if inner is not None:
            memo = (name, inner)
            key = known.get(memo)
        if key is None:
            key = _series(batch, known, name, labels, memo)
        kind = value.__class__
        problem = (
            key[1:]
            if key[0] == "\x00"
            else None
            if (kind is float or kind is int) and isfinite(value)
            else _check_value(value)
        )
        if problem is not None:
            problems.append(
                {"series": series_key(name, sorted(labels.items())), "problem": problem}
            )
            continue
        if stamp is None:
            batch.given[len(batch.keys)] = now
            add_us(now_us)
        elif stamp.__class__ is float and 0.0 <= stamp < limit:
            whole = int(stamp)
            add_us(whole * 1_000_000 + round((stamp - whole) * 1e6))
        else:
            at = datetime.fromtimestamp(stamp, UTC)
            add_us(_us(at))
        add_key(key)
        add_value(float(value))
    if problems:
        raise _refuse(problems, "sample(s)")
    if len(batch) > limits.max_samples:
        raise InvalidInput(
            f"at most {limits.max_samples} samples per request", details={"field": "body"}
        )
    return batch


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


class SketchBins(NamedTuple):
    """A stored sketch, decoded but not yet built: its mapping's parameters, and for the
    positive and the negative store the key of the first bin and the bins' counts
    (tuples, which the garbage collector stops looking at)."""

    mapping: tuple[int, float, float]  # interpolation, gamma, index offset
    positive: tuple[int, tuple[float, ...]]
    negative: tuple[int, tuple[float, ...]]
    zero_count: float

    @classmethod
    def of(cls, data: bytes) -> SketchBins:
        message = SketchMessage()
        message.ParseFromString(data)
        m, pos, neg = message.mapping, message.positiveValues, message.negativeValues
        # A slice copies the repeated field in one step (iterating it is twice as slow).
        return cls(
            (m.interpolation, m.gamma, m.indexOffset),
            (pos.contiguousBinIndexOffset, tuple(pos.contiguousBinCounts[:])),
            (neg.contiguousBinIndexOffset, tuple(neg.contiguousBinCounts[:])),
            message.zeroCount,
        )

    def sketch(self) -> DDSketch:
        return BaseDDSketch(  # type: ignore[return-value]
            mapping=_mapping(self.mapping),
            store=_store(*self.positive),
            negative_store=_store(*self.negative),
            zero_count=self.zero_count,
        )


# Built mappings by their parameters: stored sketches share a few, and nothing changes a
# mapping once built.
_MAPPINGS: dict[tuple[int, float, float], Any] = {}


def _mapping(parameters: tuple[int, float, float]) -> Any:
    found = _MAPPINGS.get(parameters)
    if found is None:
        interpolation, gamma, offset = parameters
        found = KeyMappingProto.from_proto(
            IndexMapping(gamma=gamma, indexOffset=offset, interpolation=interpolation)
        )
        if len(_MAPPINGS) < 64:
            _MAPPINGS[parameters] = found
    return found


def _store(offset: int, counts: tuple[float, ...]) -> DenseStore:
    """The store ``StoreProto.from_proto`` builds by adding the bins one by one: these
    counts from key ``offset`` on, the keys of the first and the last as its range, their
    sum as its count; built at once (a sketch has a few hundred bins, and a tick of the
    alarm worker decodes thousands of sketches)."""
    store = DenseStore()
    store.offset = offset
    if counts:
        store.bins = list(counts)
        store.min_key, store.max_key = offset, offset + len(counts) - 1
        store.count = sum(counts)
    return store


def sketch_of(data: bytes) -> DDSketch:
    return SketchBins.of(data).sketch()


def merged(sketches: list[SketchBins]) -> DDSketch:
    """What decoding the sketches and merging each into the first, in order, gives (the
    same counts by key, totals and ranges, so the same quantiles), without the bin-by-bin
    merges. A single sketch is built as it is."""
    first = sketches[0]
    if len(sketches) == 1:
        return first.sketch()
    if any(s.mapping != first.mapping for s in sketches):
        # Different parameters: DDSketch.merge decides (it refuses what it cannot merge).
        sketch = first.sketch()
        for other in sketches[1:]:
            sketch.merge(other.sketch())
        return sketch
    return BaseDDSketch(  # type: ignore[return-value]
        mapping=_mapping(first.mapping),
        store=_merged_store([s.positive for s in sketches]),
        negative_store=_merged_store([s.negative for s in sketches]),
        zero_count=sum(s.zero_count for s in sketches),
    )


def _key_at_rank(store: DenseStore, rank: float, lower: bool = True) -> int:
    """``DenseStore.key_at_rank``: the running count is summed by ``accumulate`` (the same
    additions in the same order) and searched by bisection, instead of a Python loop over
    every bin (the loop was most of a percentile alarm's cost)."""
    running = list(itertools.accumulate(store.bins))
    at = bisect.bisect_right(running, rank) if lower else bisect.bisect_left(running, rank + 1)
    return at + store.offset if at < len(running) else store.max_key


def quantile(sketch: DDSketch, q: float) -> float | None:
    """``sketch.get_quantile_value(q)``, step for step, with the faster key search."""
    negative, zero, positive = sketch._negative_store, sketch._zero_count, sketch._store
    if q < 0 or q > 1 or sketch._count == 0:
        return None
    if not isinstance(positive, DenseStore) or not isinstance(negative, DenseStore):
        return sketch.get_quantile_value(q)
    rank = q * (sketch._count - 1)
    if rank < negative.count:
        key = _key_at_rank(negative, negative.count - rank - 1, lower=False)
        return -sketch._mapping.value(key)
    if rank < zero + negative.count:
        return 0
    return sketch._mapping.value(_key_at_rank(positive, rank - zero - negative.count))


def merged_quantile(sketches: list[SketchBins], q: float) -> float | None:
    """``quantile(merged(sketches), q)`` read straight from the bins, without building the
    stores and the sketch (an alarm tick asks this thousands of times, mostly of one
    sketch). Sketches with different parameters take the library's path."""
    first = sketches[0]
    if any(s.mapping != first.mapping for s in sketches):
        return quantile(merged(sketches), q)
    if len(sketches) == 1:
        (n_offset, n_bins), (p_offset, p_bins) = first.negative, first.positive
        n_count, p_count, zero = sum(n_bins), sum(p_bins), first.zero_count
    else:
        n_offset, n_bins, n_count = _merged_bins([s.negative for s in sketches])
        p_offset, p_bins, p_count = _merged_bins([s.positive for s in sketches])
        zero = sum(s.zero_count for s in sketches)
    count = n_count + zero + p_count
    if q < 0 or q > 1 or count == 0:
        return None
    rank = q * (count - 1)
    mapping = _mapping(first.mapping)
    if rank < n_count:
        return -mapping.value(_bin_key(n_offset, n_bins, n_count - rank - 1, lower=False))
    if rank < zero + n_count:
        return 0
    return mapping.value(_bin_key(p_offset, p_bins, rank - zero - n_count, lower=True))


def _merged_bins(
    stores: list[tuple[int, tuple[float, ...]]],
) -> tuple[int, list[float], float]:
    """What ``_merged_store`` builds, as (offset, bins, count)."""
    counted = []
    totals = []
    for offset, counts in stores:
        if counts:
            total = sum(counts)
            if total:
                counted.append((offset, counts))
                totals.append(total)
    if not counted:
        return 0, [], 0
    low = min(offset for offset, _ in counted)
    high = max(offset + len(counts) for offset, counts in counted)
    bins = [0.0] * (high - low)
    for offset, counts in counted:
        at = offset - low
        bins[at : at + len(counts)] = map(operator.add, bins[at : at + len(counts)], counts)
    return low, bins, sum(totals)


def _bin_key(offset: int, bins: Sequence[float], rank: float, *, lower: bool) -> int:
    """``DenseStore.key_at_rank`` over bins from key ``offset`` (the last key when the rank
    is past them all, as the store's ``max_key``)."""
    running = list(itertools.accumulate(bins))
    at = bisect.bisect_right(running, rank) if lower else bisect.bisect_left(running, rank + 1)
    return offset + min(at, len(running) - 1)


def merged_bytes(stored: list[bytes]) -> bytes:
    """Stored sketches merged into one, stored the same way (downsampling's fold)."""
    return _sketch_bytes(merged([SketchBins.of(b) for b in stored]))


def _merged_store(stores: list[tuple[int, tuple[float, ...]]]) -> DenseStore:
    # DenseStore.merge skips a store that counts nothing; the others' ranges make the range.
    counted = [(offset, counts) for offset, counts in stores if counts and sum(counts)]
    if not counted:
        return DenseStore()
    low = min(offset for offset, _ in counted)
    high = max(offset + len(counts) for offset, counts in counted)
    bins = [0.0] * (high - low)
    for offset, counts in counted:
        at = offset - low
        bins[at : at + len(counts)] = map(operator.add, bins[at : at + len(counts)], counts)
    store = DenseStore()
    store.bins, store.offset, store.min_key, store.max_key = bins, low, low, high - 1
    store.count = sum(sum(counts) for _, counts in counted)
    return store


def ingest(ctx: Ctx, samples: Sequence[Sample], limits: IngestLimits | None = None) -> IngestResult:
    """Fold samples into per-minute rollups. Checks everything first; stores all or nothing."""
    limits = limits or IngestLimits()
    batch = samples if isinstance(samples, Samples) else Samples.of(samples)
    problems: list[dict[str, Any]] = []
    # series key -> {microsecond: value}: the values already taken, to find repeats
    seen: dict[str, dict[int, float]] = {}
    duplicates = 0
    # (series key, minute in microseconds since the epoch) -> values
    groups: defaultdict[tuple[str, int], list[float]] = defaultdict(list)
    oldest, newest = _us(ctx.now - limits.late_window), _us(ctx.now + limits.future_window)
    given = batch.given
    for index, (key, value, us) in enumerate(zip(batch.keys, batch.values, batch.us, strict=True)):
        if not oldest <= us <= newest:
            when = "older than the accepted window" if us < oldest else "in the future"
            problems.append(
                {"index": index, "problem": f"{key} at {batch[index].at.isoformat()} is {when}"}
            )
            continue
        taken = seen.get(key)
        if taken is None:
            taken = seen[key] = {}
        previous = taken.get(us)
        if previous is not None:
            if previous != value:
                problems.append(
                    {
                        "index": index,
                        "problem": f"{key} has two values at {batch[index].at.isoformat()}",
                    }
                )
            duplicates += 1
            continue
        taken[us] = value
        if given and index in given:
            # a datetime given with an offset keeps the minute of its own wall clock
            groups[key, _us(_minute(given[index]))].append(value)
        else:
            groups[key, us - us % _MINUTE_US].append(value)
    if problems:
        raise _refuse(problems, "sample(s)")
    names = {key: batch.series[key] for key in seen}
    ids, created = _series_ids(ctx, names, limits)
    _fold(ctx.session, groups, ids)
    return IngestResult(
        accepted=sum(map(len, seen.values())),
        duplicates=duplicates,
        series_created=created,
        buckets=len(groups),
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
    session: Session, groups: dict[tuple[str, int], list[float]], ids: dict[str, int]
) -> None:
    wanted = {(ids[key], minute): values for (key, minute), values in groups.items()}
    series = sorted({s for s, _ in wanted})
    minutes = sorted({m for _, m in wanted})
    existing: dict[tuple[int, int], MetricRollup] = {}
    if wanted:
        first, last = (EPOCH + timedelta(microseconds=m) for m in (minutes[0], minutes[-1]))
        for start in range(0, len(series), 500):
            rows = session.execute(
                select(MetricRollup).where(
                    MetricRollup.series_id.in_(series[start : start + 500]),
                    MetricRollup.resolution == MINUTE,
                    MetricRollup.bucket_start >= first,
                    MetricRollup.bucket_start <= last,
                )
            ).scalars()
            existing.update({(r.series_id, _us(r.bucket_start)): r for r in rows})
    new_rows = []
    for (series_id, minute), values in wanted.items():
        row = existing.get((series_id, minute))
        sketch = sketch_of(row.sketch) if row else DDSketch(RELATIVE_ACCURACY)
        add = sketch.add
        for value in values:
            add(value)
        if row is None:
            new_rows.append(
                {
                    "series_id": series_id,
                    "resolution": MINUTE,
                    "bucket_start": EPOCH + timedelta(microseconds=minute),
                    "count": len(values),
                    "sum": math.fsum(values),
                    "min": min(values),
                    "max": max(values),
                    "sketch": _sketch_bytes(sketch),
                }
            )
        else:
            row.count += len(values)
            row.sum += math.fsum(values)
            row.min, row.max = min(row.min, *values), max(row.max, *values)
            row.sketch = _sketch_bytes(sketch)
    session.flush()
    if new_rows:
        # One INSERT of many rows, without fetching their ids back (nothing here reads
        # them): the ORM would track an object per rollup and return each one's id.
        session.execute(insert(MetricRollup.__table__), new_rows)


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
        found = quantile(self.sketch, float(statistic[1:]) / 100)
        return None if found is None else min(max(found, self.min), self.max)


def query(
    session: Session,
    name: str,
    match: Mapping[str, str],
    statistic: str,
    start: datetime,
    end: datetime,
    period_seconds: int,
    hidden_services: frozenset[str] = frozenset(),
) -> list[tuple[datetime, float | None]]:
    """One value per period in [start, end) for every series of ``name`` whose labels
    include ``match``, merged (percentiles from merged sketches, never averaged). Minute
    and hourly rollups are read alike; a period shorter than an hour where only hourly
    rollups remain (downsampled) is missing, never the hour's value. Series of the
    ``hidden_services`` (other organisations', for the caller) count as absent."""
    check_statistic(statistic)
    if period_seconds % MINUTE:
        raise InvalidInput(
            "the period must be a multiple of 60 seconds", details={"field": "period"}
        )
    series_ids = [
        s.id
        for s in session.execute(select(MetricSeries).where(MetricSeries.name == name)).scalars()
        if all(s.labels.get(k) == v for k, v in match.items())
        and s.labels.get("service") not in hidden_services
    ]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = start - timedelta(seconds=(start - epoch).total_seconds() % period_seconds)
    periods = []
    cursor = first
    while cursor < end:
        periods.append(cursor)
        cursor += timedelta(seconds=period_seconds)
    percentile = statistic.startswith("p")
    columns = [
        MetricRollup.bucket_start,
        MetricRollup.resolution,
        MetricRollup.count,
        MetricRollup.sum,
        MetricRollup.min,
        MetricRollup.max,
    ]
    if percentile:
        columns.append(MetricRollup.sketch)
    buckets: dict[datetime, Bucket] = {}
    # Per period, the sketches undecoded into stores: one merged read of their bins gives
    # what merging the decoded sketches one by one gave, at a fraction of the cost.
    sketches: dict[datetime, list[SketchBins]] = {}
    for start_chunk in range(0, len(series_ids), 500):
        rows = session.execute(
            select(*columns).where(
                MetricRollup.series_id.in_(series_ids[start_chunk : start_chunk + 500]),
                MetricRollup.bucket_start >= first,
                MetricRollup.bucket_start < end,
            )
        )
        for row in rows:
            if period_seconds % row.resolution:
                continue  # an hourly rollup says nothing about one minute of its hour
            offset = (row.bucket_start - first).total_seconds() // period_seconds
            period = first + timedelta(seconds=offset * period_seconds)
            bucket = buckets.get(period)
            if bucket is None:
                buckets[period] = Bucket(row.count, row.sum, row.min, row.max, None)
                sketches[period] = []
            else:
                bucket.add(row.count, row.sum, row.min, row.max, None)
            if percentile:
                sketches[period].append(SketchBins.of(row.sketch))
    if not percentile:
        return [(p, buckets[p].value(statistic) if p in buckets else None) for p in periods]
    q = float(statistic[1:]) / 100
    return [(p, _percentile(buckets.get(p), sketches.get(p), q)) for p in periods]


def _percentile(bucket: Bucket | None, sketches: list[SketchBins] | None, q: float) -> float | None:
    """``Bucket.value`` of a percentile, with the sketches merged: within the period's
    observed range."""
    if bucket is None or not sketches or bucket.count <= 0:
        return None
    found = merged_quantile(sketches, q)
    return None if found is None else min(max(found, bucket.min), bucket.max)
