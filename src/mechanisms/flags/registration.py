"""Importing this registers the flags tables, worker job (deployment steps and monitor
checks), event subscriber (roll back when a watched alarm fires) and demo data
(modules.import_all does, for the API, the worker, migrations and `mech demo`)."""

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.worker import Reconciler, register
from mechanisms.flags import demo, deployments, tables  # noqa: F401
from mechanisms.ops import alarm_dependents

alarm_dependents.register_watcher("flags.rollouts", deployments.rollouts_watching)

register(
    Reconciler(
        "flags.deployments", find_due=deployments.due_deployments, advance=deployments.advance
    )
)


@events.subscribe("flags.rollback-on-alarm", "alarms.state_changed")
def _rollback_on_alarm(ctx: Ctx, message: events.EventMessage) -> None:
    # The reconcile pass reads the same states through ops.alarms.firing; this handler only
    # makes the rollback happen as soon as the event is delivered. A silenced alarm still
    # rolls back: silences mute people's notifications, not protection (decision 0011).
    if message.payload.get("state") == deployments.ALARM:
        deployments.rollback_on_alarm(ctx, message.payload["name"])
