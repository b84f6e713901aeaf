"""Worker jobs: bakes that end or roll back, break-glass requests and grants and protected
changes that expire, one-off windows and freezes that are over."""

from __future__ import annotations

from sqlalchemy import select

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.errors import StaleState
from mechanisms.core.worker import WORKER, Reconciler, Worker, register
from mechanisms.deploys import breakglass, changes, pipelines, windows
from mechanisms.deploys.tables import Deployment, Pipeline, Stage
from mechanisms.ops import alarms as ops_alarms


class FinishBakes:
    """Every tick: each baking deployment whose bake is over, or whose stage has a watched
    alarm in ALARM, is finished or rolled back in its own transaction."""

    name = "deploys.bakes"

    def run(self, worker: Worker) -> int:
        now = worker.clock.now()
        with worker.db.transaction(write=False) as session:
            rows = session.execute(
                select(Deployment.id, Deployment.bake_until, Stage.alarms)
                .join(Pipeline, Pipeline.id == Deployment.pipeline_id)
                .join(Stage, (Stage.pipeline_id == Pipeline.id) & (Stage.name == Deployment.stage))
                .where(Deployment.state == pipelines.BAKING)
                .order_by(Deployment.id)
                .limit(worker.settings.worker_batch)
            ).all()
            due = [
                r.id
                for r in rows
                if r.bake_until <= now or ops_alarms.firing(session, list(r.alarms))
            ]
        moved = 0
        for deployment_id in due:
            try:
                with worker.db.transaction() as session:
                    pipelines.advance_bake(Ctx(session, WORKER, worker.clock.now()), deployment_id)
                moved += 1
            except StaleState:
                continue
        return moved


class ExpireWindows:
    name = "deploys.windows-expiry"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            return windows.expire_due(Ctx(session, WORKER, worker.clock.now()))


register(FinishBakes())
register(ExpireWindows())
register(Reconciler("deploys.breakglass-expiry", breakglass.due_expiries, breakglass.expire))
register(Reconciler("deploys.protected-change-expiry", changes.due_expiries, changes.expire))


@events.subscribe("deploys.rollback-on-alarm", "alarms.state_changed")
def _roll_back_on_alarm(ctx: Ctx, message: events.EventMessage) -> None:
    """An alarm went into ALARM: every stage baking under its watch rolls back now, even if
    the alarm is quiet again by the next tick."""
    if message.payload.get("state") == "ALARM":
        pipelines.alarm_fired(ctx, message.payload["name"])
