"""Which metrics the built-in store holds and the labels of their series, for people
picking what to graph (the metrics explorer, `mech ops metrics`)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select, true

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role
from mechanisms.ops import alarms
from mechanisms.ops.tables import MetricSeries

# A metric with many series shows the values of its labels from the first ones only.
LABEL_SCAN_LIMIT = 2000
VALUES_SHOWN = 20


def _readable(ctx: Ctx) -> ColumnElement[bool]:
    """Series the caller may read: none of another organisation's services (by their
    ``service`` label; unlabelled series belong to nobody)."""
    hidden = alarms.hidden_service_keys(ctx)
    if not hidden:
        return true()
    service = MetricSeries.labels[alarms.SERVICE_LABEL].as_string()
    return or_(service.is_(None), service.not_in(sorted(hidden)))


def metric_names(ctx: Ctx, limit: int = 1000) -> list[str]:
    require_site_role(ctx, Role.VIEWER)
    return list(
        ctx.session.execute(
            select(MetricSeries.name)
            .where(_readable(ctx))
            .distinct()
            .order_by(MetricSeries.name)
            .limit(limit)
        ).scalars()
    )


def label_values(ctx: Ctx, metric: str) -> dict[str, list[str]]:
    """Label name → some of its values, over the metric's series."""
    require_site_role(ctx, Role.VIEWER)
    found: dict[str, set[str]] = {}
    for labels in ctx.session.execute(
        select(MetricSeries.labels)
        .where(MetricSeries.name == metric, _readable(ctx))
        .order_by(MetricSeries.id)
        .limit(LABEL_SCAN_LIMIT)
    ).scalars():
        for key, value in labels.items():
            found.setdefault(key, set()).add(value)
    return {key: sorted(values)[:VALUES_SHOWN] for key, values in sorted(found.items())}
