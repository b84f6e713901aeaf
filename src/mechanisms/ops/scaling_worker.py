"""The worker's share of autoscaling: evaluate due policies, run command actions outside
any transaction, recover actions a stopped worker left running, and evaluate the
policies an alarm names when it changes state. Importing this module registers them."""

from __future__ import annotations

import os
import subprocess

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.core.worker import WORKER, Worker, register
from mechanisms.ops import autoscaling

# What a command inherits from the worker's environment; nothing else (no credentials).
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")


def run_command(run: autoscaling.CommandRun) -> autoscaling.CommandOutcome:
    """Run the argv without a shell, the decision on stdin, within its timeout; keep the
    exit code and the end of stderr. Never raises for a command that misbehaves."""
    stdin, variables = autoscaling.command_input(run)
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ} | variables
    try:
        done = subprocess.run(  # noqa: S603 -- a site admin's argv, no shell
            run.argv,
            input=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=run.timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace")
        return autoscaling.CommandOutcome(
            None, _tail(f"timed out after {run.timeout_seconds}s; killed\n{stderr}"), False
        )
    except OSError as exc:
        return autoscaling.CommandOutcome(None, f"could not start: {exc}", False)
    stderr = done.stderr.decode("utf-8", "replace")
    return autoscaling.CommandOutcome(done.returncode, _tail(stderr), done.returncode == 0)


def _tail(text: str) -> str:
    limit = autoscaling.MAX_OUTPUT_CHARS // 2
    return text if len(text) <= limit else "…" + text[-limit:]


class EvaluateScalingPolicies:
    name = "ops.scaling.evaluate"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            return autoscaling.evaluate_due(Ctx(session, WORKER, worker.clock.now()))


class RunScalingActions:
    """Each command action in three steps, so a crash between any two is visible in the
    history: claim (committed), run (no transaction open), record the outcome."""

    name = "ops.scaling.actions"

    def run(self, worker: Worker) -> int:
        with worker.db.transaction() as session:
            moved = autoscaling.recover_stalled(Ctx(session, WORKER, worker.clock.now()))
        with worker.db.transaction(write=False) as session:
            pending = autoscaling.pending_action_ids(session)
        for decision_id in pending:
            with worker.db.transaction() as session:
                claimed = autoscaling.claim_action(
                    Ctx(session, WORKER, worker.clock.now()), decision_id
                )
            if claimed is None:
                continue
            outcome = run_command(claimed)
            with worker.db.transaction() as session:
                autoscaling.finish_action(
                    Ctx(session, WORKER, worker.clock.now()), claimed, outcome
                )
            moved += 1
        return moved


register(EvaluateScalingPolicies())
register(RunScalingActions())


@events.subscribe("ops.scaling-from-alarms", "alarms.state_changed")
def _scale_on_alarm(ctx: Ctx, message: events.EventMessage) -> None:
    autoscaling.on_alarm(ctx, message.payload["name"], message.payload.get("state", ""))
