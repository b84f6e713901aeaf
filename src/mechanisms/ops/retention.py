"""Retention and downsampling of the metrics store, as a worker job.

Minute rollups older than ``metrics_minute_rollups_hours`` are folded into one hourly rollup
per series and hour (counts and sums added, min of mins, max of maxes, DDSketches merged, so
any percentile of an hour is still exact to the sketch's accuracy), and the minute rows are
deleted; every rollup older than ``metrics_retention_days`` is deleted.

Each batch folds whole (series, hour) groups and deletes what it folded in one transaction:
a crash leaves either the minute rows or the hourly row, never both, so nothing is counted
twice, and running the job again only finds what is left to do.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from mechanisms.core.worker import Worker, register
from mechanisms.ops import metrics
from mechanisms.ops.tables import MetricRollup

MINUTE, HOUR = metrics.MINUTE, metrics.HOUR
# Minute rollups read per batch: whole (series, hour) groups of up to 60 rows each.
BATCH_ROWS = 6_000


@dataclass(frozen=True)
class Ages:
    minute_rollups: timedelta
    retention: timedelta


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def fold_batch(session: Session, now: datetime, ages: Ages, limit: int = BATCH_ROWS) -> int:
    """Fold the oldest minute rollups of one hour (up to ``limit`` rows, whole series) into
    hourly rollups and delete them. Returns how many (series, hour) groups it folded."""
    # Only whole hours entirely older than the age: no minute of them can still change.
    cutoff = _hour(now - ages.minute_rollups)
    oldest = session.execute(
        select(MetricRollup.bucket_start)
        .where(MetricRollup.resolution == MINUTE, MetricRollup.bucket_start < cutoff)
        .order_by(MetricRollup.bucket_start)
        .limit(1)
    ).scalar_one_or_none()
    if oldest is None:
        return 0
    hour = _hour(oldest)
    rows = list(
        session.execute(
            select(
                MetricRollup.id,
                MetricRollup.series_id,
                MetricRollup.count,
                MetricRollup.sum,
                MetricRollup.min,
                MetricRollup.max,
                MetricRollup.sketch,
            )
            .where(
                MetricRollup.resolution == MINUTE,
                MetricRollup.bucket_start >= hour,
                MetricRollup.bucket_start < hour + timedelta(hours=1),
            )
            .order_by(MetricRollup.series_id, MetricRollup.bucket_start)
            .limit(limit)
            # Another worker folding the same rows waits, then finds them gone.
            .with_for_update()
        )
    )
    if len(rows) == limit and rows[0].series_id != rows[-1].series_id:
        last = rows[-1].series_id  # its group may go on past the limit: the next batch
        rows = [r for r in rows if r.series_id != last]
    by_series: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_series[row.series_id].append(row)
    existing = {
        r.series_id: r
        for r in session.execute(
            select(MetricRollup).where(
                MetricRollup.series_id.in_(list(by_series)),
                MetricRollup.resolution == HOUR,
                MetricRollup.bucket_start == hour,
            )
        ).scalars()
    }
    new_rows = []
    for series_id, group in by_series.items():
        found = existing.get(series_id)
        parts = group if found is None else [found, *group]
        folded = {
            "count": sum(p.count for p in parts),
            "sum": sum(p.sum for p in parts),
            "min": min(p.min for p in parts),
            "max": max(p.max for p in parts),
            "sketch": metrics.merged_bytes([p.sketch for p in parts]),
        }
        if found is None:
            new_rows.append(
                {"series_id": series_id, "resolution": HOUR, "bucket_start": hour, **folded}
            )
        else:  # minute rows that arrived after their hour was folded (a longer late window)
            session.execute(
                update(MetricRollup).where(MetricRollup.id == found.id).values(**folded)
            )
    if new_rows:
        session.execute(insert(MetricRollup.__table__), new_rows)
    session.execute(delete(MetricRollup.__table__).where(MetricRollup.id.in_([r.id for r in rows])))
    return len(by_series)


def expire_batch(session: Session, now: datetime, ages: Ages, limit: int = 10_000) -> int:
    """Delete up to ``limit`` rollups (of any resolution) older than the retention."""
    ids = list(
        session.execute(
            select(MetricRollup.id)
            .where(MetricRollup.bucket_start < now - ages.retention)
            .order_by(MetricRollup.bucket_start)
            .limit(limit)
        ).scalars()
    )
    if ids:
        session.execute(delete(MetricRollup.__table__).where(MetricRollup.id.in_(ids)))
    return len(ids)


class DownsampleMetrics:
    """Every tick: one bounded batch of expiry, then one of folding, each in its own
    transaction. Once there is nothing left it looks again a minute later."""

    name = "ops.metrics-retention"
    IDLE = timedelta(minutes=1)

    def __init__(self) -> None:
        # By worker: a process may run several (tests do), each with its own clock.
        self.next_look: WeakKeyDictionary[Worker, datetime] = WeakKeyDictionary()

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        later = self.next_look.get(worker)
        if later is not None and now < later:
            return 0
        ages = Ages(
            timedelta(hours=worker.settings.metrics_minute_rollups_hours),
            timedelta(days=worker.settings.metrics_retention_days),
        )
        with worker.db.transaction() as session:
            moved = expire_batch(session, now, ages)
        with worker.db.transaction() as session:
            moved += fold_batch(session, now, ages)
        if moved:
            self.next_look.pop(worker, None)
        else:
            self.next_look[worker] = now + self.IDLE
        return moved


register(DownsampleMetrics())
