"""Ops: detective metrics, alarms that act, tickets, on-call rotations.

Importing the package registers its tables and its worker job (evaluate due alarms)."""

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import alarms, alerts, prometheus, tables, tickets  # noqa: F401  # noqa: F401 - alerts from existing tools


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
    tickets.on_alarm(ctx, payload["name"], payload.get("state", ""), payload.get("reason", ""))


import mechanisms.ops.scaling_worker  # noqa: E402, F401 -- scaling jobs; alarms act on scaling
# The demo's ops data and the synthetic-metrics job register themselves on import.
from mechanisms.ops import demo, synthetic  # noqa: E402, F401
# --- on-call: pages, escalation and handoff jobs (ops/paging.py), demo schedules -----------
from mechanisms.ops import demo_oncall, paging  # noqa: E402, F401
