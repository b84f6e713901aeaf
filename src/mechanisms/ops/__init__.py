"""Ops: detective metrics, alarms that act, tickets, on-call rotations.

Importing the package registers its tables and its worker job (evaluate due alarms)."""

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import alarms, tables, tickets  # noqa: F401


class EvaluateAlarms:
    """Every tick: the alarms whose evaluation is due, in one pass."""

    name = "ops.alarms"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            # Transitions count as progress: their events should go out before the worker rests.
            return alarms.evaluate_due(Ctx(session, WORKER, worker.clock.now()))


register(EvaluateAlarms())


@events.subscribe("ops.tickets-from-alarms", "alarms.state_changed")
def _ticket_for_alarm(ctx: Ctx, message: events.EventMessage) -> None:
    payload = message.payload
    if payload.get("silenced") and payload.get("state") == "ALARM":
        return  # a scheduled silence holds the ticket (and so its page) back: decision 0011
    tickets.on_alarm(ctx, payload["name"], payload.get("state", ""), payload.get("reason", ""))


# Registers the metrics store's retention and downsampling job.
from mechanisms.ops import retention  # noqa: E402, F401
