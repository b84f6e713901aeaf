"""Ops: detective metrics, alarms that act, tickets, on-call rotations.

Importing the package registers its tables and its worker job (evaluate due alarms)."""

from mechanisms.core.context import Ctx
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import alarms, tables  # noqa: F401


class EvaluateAlarms:
    """Every tick: the alarms whose evaluation is due, in one pass."""

    name = "ops.alarms"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            # Transitions count as progress: their events should go out before the worker rests.
            return alarms.evaluate_due(Ctx(session, WORKER, worker.clock.now()))


register(EvaluateAlarms())
