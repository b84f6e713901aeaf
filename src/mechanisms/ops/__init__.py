"""Ops: detective metrics, alarms that act, tickets, on-call rotations.

Importing the package registers its tables, its worker jobs (alarm evaluation here;
Prometheus alarms, paging and handoffs, scaling, retention and synthetic metrics in their
modules), its event subscribers and its demo data."""

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import (  # noqa: F401 - each registers its jobs, subscribers or demo data
    alarms,
    alerts,
    demo,
    demo_oncall,
    paging,
    prometheus,
    retention,
    scaling_worker,
    synthetic,
    tables,
    tickets,
)


class EvaluateAlarms:
    """Every tick: the alarms whose evaluation is due, in one pass."""

    name = "ops.alarms"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            # Transitions count as progress: their events should go out before the worker rests.
            return alarms.evaluate_due(Ctx(session, WORKER, worker.clock.now()))


register(EvaluateAlarms())
register(prometheus.EvaluatePrometheusAlarms())


@events.subscribe("ops.tickets-from-alarms", "alarms.state_changed")
def _ticket_for_alarm(ctx: Ctx, message: events.EventMessage) -> None:
    payload = message.payload
    if payload.get("silenced") and payload.get("state") == "ALARM":
        return  # a scheduled silence holds the ticket (and so its page) back: decision 0011
    tickets.on_alarm(ctx, payload["name"], payload.get("state", ""), payload.get("reason", ""))
