"""What depends on an alarm, and the changes that must ask it first: deleting or renaming an
alarm that a running flag rollout, a baking deploy or a pipeline stage watches would leave
that change silently unprotected, so both are refused (409) with the list of dependents.

Ops is lower than flags and deploys and imports neither: each registers a function that
names what watches an alarm (from its registration module), and ops asks them all."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mechanisms.core import audit, inputs
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict
from mechanisms.ops import alarm_rules
from mechanisms.ops.alarms import alarm_snapshot, editable_alarm
from mechanisms.ops.tables import Alarm, AlarmTransition, ScalingPolicyRow

# (session, alarm name) -> a sentence per dependent, e.g. "flag rollout shop/checkout in beta".
Watcher = Callable[[Session, str], list[str]]
_watchers: dict[str, Watcher] = {}


def register_watcher(name: str, watcher: Watcher) -> None:
    """Called from a mechanism's registration; registering the same name again replaces it."""
    _watchers[name] = watcher


def dependents(session: Session, alarm: str) -> list[str]:
    return sorted(d for watcher in _watchers.values() for d in watcher(session, alarm))


class AlarmInUse(Conflict):
    code = "alarm_in_use"


def _refuse_if_watched(ctx: Ctx, alarm: str, change: str) -> None:
    found = dependents(ctx.session, alarm)
    if found:
        raise AlarmInUse(
            f"alarm {alarm!r} cannot be {change}: " + "; ".join(found) + " depend on it",
            details={"alarm": alarm, "dependents": found},
        )


def delete_alarm(ctx: Ctx, name: str) -> None:
    alarm = editable_alarm(ctx, name)
    _refuse_if_watched(ctx, name, "deleted")
    before = alarm_snapshot(alarm)
    ctx.session.execute(delete(AlarmTransition).where(AlarmTransition.alarm_id == alarm.id))
    ctx.session.delete(alarm)
    ctx.session.flush()
    audit.record(ctx, "ops.alarm_deleted", "alarm", name, before=before)


def rename_alarm(ctx: Ctx, name: str, new_name: str) -> Alarm:
    alarm = editable_alarm(ctx, name)
    inputs.checked_key(new_name, "name", 200)
    if ctx.session.execute(select(Alarm.id).where(Alarm.name == new_name)).first():
        raise Conflict(f"alarm {new_name!r} already exists", details={"field": "name"})
    _refuse_if_watched(ctx, name, "renamed")
    before = alarm_snapshot(alarm)
    alarm.name = new_name
    ctx.session.flush()
    audit.record(
        ctx, "ops.alarm_renamed", "alarm", new_name, before=before, after=alarm_snapshot(alarm)
    )
    return alarm


# --- what ops itself hangs on an alarm ----------------------------------------------


def _composites_reading(session: Session, alarm: str) -> list[str]:
    rules = session.execute(
        select(Alarm.name, Alarm.definition).where(Alarm.kind == "composite")
    ).all()
    return [
        f"composite alarm {name}"
        for name, definition in rules
        if name != alarm and alarm in alarm_rules.parse_rule(definition["rule"]).alarms
    ]


def _scaling_policies_on(session: Session, alarm: str) -> list[str]:
    names = session.execute(
        select(ScalingPolicyRow.name).where(ScalingPolicyRow.alarm == alarm)
    ).scalars()
    return [f"scaling policy {name}" for name in names]


register_watcher("ops.composites", _composites_reading)
register_watcher("ops.scaling", _scaling_policies_on)
