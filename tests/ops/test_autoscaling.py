"""Autoscaling through the worker: target tracking on the built-in metrics, cooldowns,
the capacity history, and the actions that carry decisions out (a signed webhook to a
real receiver, a real command), including what happens after a crash."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta

import pytest
import standardwebhooks

from mechanisms.core import webhooks
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Forbidden, InvalidInput
from mechanisms.core.identity import system_principal
from mechanisms.core.worker import Worker
from mechanisms.ops import alarms, autoscaling
from mechanisms.ops.scaling_worker import RunScalingActions
from tests.conftest import RECEIVER_SETTINGS
from tests.support.receiver import Receiver

SETTINGS = RECEIVER_SETTINGS

# The receivers listen on this machine, which the server refuses unless allowed.
pytestmark = pytest.mark.usefixtures("local_receivers_allowed")


@pytest.fixture
def worker(db, clock) -> Iterator[Worker]:
    w = Worker(db, clock=clock, settings=SETTINGS)
    yield w
    w.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def checkout(org, run):
    run(alarms.create_service, "checkout", "Checkout", "payments")


def make_target(run, action=None, **policy):
    run(
        autoscaling.create_target,
        "checkout-web",
        "checkout",
        min_capacity=1,
        max_capacity=10,
        desired_capacity=2,
        unit_cost_per_hour=0.5,
        action=action,
    )
    settings = {
        "metric": "cpu_utilization",
        "match": {"service": "checkout"},
        "target_value": 50.0,
        "scale_out_cooldown_seconds": 300,
        "scale_in_cooldown_seconds": 600,
        **policy,
    }
    return run(autoscaling.create_policy, "checkout-cpu", "checkout-web", **settings)


def minute_at(run, clock, value):
    """A minute of cpu samples from now on, then the clock moves on past that minute."""
    now = clock.now()
    run(
        alarms.ingest_json,
        {
            "samples": [
                {
                    "name": "cpu_utilization",
                    "labels": {"service": "checkout"},
                    "value": value,
                    "timestamp": (now + timedelta(seconds=s)).timestamp(),
                }
                for s in range(1, 60, 10)
            ]
        },
    )
    clock.advance(minutes=1)


def capacity(run):
    return run(autoscaling.get_target, "checkout-web").desired_capacity


def test_target_tracking_scales_out_waits_for_cooldowns_and_scales_in(
    db, run, clock, worker, checkout
):
    make_target(run)
    minute_at(run, clock, 100)  # twice the target: 2 -> 4
    worker.tick()
    assert capacity(run) == 4
    minute_at(run, clock, 100)  # would be 8, but the scale-out cooldown holds it
    worker.tick()
    assert capacity(run) == 4
    held = run(autoscaling.history, "checkout-web")[0]
    assert held.to_capacity == held.from_capacity == 4 and held.formula_capacity == 8
    assert "cooldown" in held.reason
    clock.advance(minutes=4)
    minute_at(run, clock, 100)
    worker.tick()
    assert capacity(run) == 8
    for _ in range(3):  # low load, but scale-in waits 10 minutes after the last activity
        minute_at(run, clock, 10)
        worker.tick()
    assert capacity(run) == 8
    clock.advance(minutes=7)
    minute_at(run, clock, 10)
    worker.tick()
    assert capacity(run) == 2  # ceil(8 x 10 / 50)
    changes = [
        (d.from_capacity, d.to_capacity, d.trigger, d.actor, d.action_status)
        for d in reversed(run(autoscaling.history, "checkout-web"))
        if d.from_capacity != d.to_capacity
    ]
    assert changes == [
        (2, 4, "schedule", "system:worker", "emitted"),
        (4, 8, "schedule", "system:worker", "emitted"),
        (8, 2, "schedule", "system:worker", "emitted"),
    ]


def test_a_quiet_metric_within_tolerance_records_nothing(db, run, clock, worker, checkout):
    make_target(run)
    for _ in range(3):
        minute_at(run, clock, 53)
        worker.tick()
    assert capacity(run) == 2
    assert run(autoscaling.history, "checkout-web") == []


def test_scale_in_protection_keeps_the_capacity(db, run, clock, worker, checkout):
    make_target(run, disable_scale_in=True)
    minute_at(run, clock, 1)
    worker.tick()
    assert capacity(run) == 2
    assert "scale-in is disabled" in run(autoscaling.history, "checkout-web")[0].reason


def test_a_webhook_action_reaches_a_real_receiver_signed(
    db, run, clock, worker, receiver, checkout
):
    hook, secret = run(webhooks.create, receiver.url, ["nothing.*"], "scaler")
    make_target(run, action={"kind": "webhook", "webhook_id": hook.id})
    minute_at(run, clock, 150)
    worker.run_until_idle()
    got = receiver.snapshot()
    assert len(got) == 1
    body = standardwebhooks.Webhook(secret).verify(got[0].body, got[0].headers)
    assert body["type"] == "ops.scaling.decided"
    data = body["data"]["payload"]
    assert (data["target"], data["from_capacity"], data["to_capacity"]) == ("checkout-web", 2, 6)
    assert data["metric_value"] == 150
    # The receiver reports back what now runs.
    run(autoscaling.report_capacity, "checkout-web", 6)
    assert run(autoscaling.get_target, "checkout-web").current_capacity == 6


def test_a_webhook_subscribed_to_the_event_gets_it_once(db, run, clock, worker, receiver, checkout):
    hook, _ = run(webhooks.create, receiver.url, ["ops.scaling.*"], "all scaling")
    make_target(run, action={"kind": "webhook", "webhook_id": hook.id})
    minute_at(run, clock, 150)
    worker.run_until_idle()
    assert [json.loads(r.body)["type"] for r in receiver.snapshot()].count(
        "ops.scaling.decided"
    ) == 1


SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    decision = json.load(sys.stdin)
    mode = sys.argv[2]
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps({"to": decision["to_capacity"],
                              "env": os.environ["MECH_SCALING_TO"],
                              "attempt": os.environ["MECH_SCALING_ATTEMPT"]}) + "\\n")
    if mode == "fail":
        sys.stderr.write("x" * 10000 + "cloud API said no")
        sys.exit(3)
    if mode == "hang":
        time.sleep(30)
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "scale.py"
    path.write_text(SCRIPT)
    log = tmp_path / "calls.jsonl"

    def action(mode="ok", timeout=20):
        argv = [sys.executable, str(path), str(log), mode]
        return {"kind": "command", "argv": argv, "timeout_seconds": timeout}

    action.calls = lambda: (
        [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    )
    return action


def test_a_command_action_runs_with_the_decision_on_stdin(db, run, clock, worker, checkout, script):
    make_target(run, action=script())
    minute_at(run, clock, 100)
    worker.run_until_idle()
    assert script.calls() == [{"to": 4, "env": "4", "attempt": "1"}]
    decision = run(autoscaling.history, "checkout-web")[0]
    assert (decision.action_status, decision.action_exit_code) == ("succeeded", 0)
    target = run(autoscaling.get_target, "checkout-web")
    assert (target.desired_capacity, target.current_capacity) == (4, 4)


def test_a_failing_command_is_recorded_with_a_bounded_stderr(
    db, run, clock, worker, checkout, script
):
    make_target(run, action=script("fail"))
    minute_at(run, clock, 100)
    worker.run_until_idle()
    decision = run(autoscaling.history, "checkout-web")[0]
    assert (decision.action_status, decision.action_exit_code) == ("failed", 3)
    assert decision.action_output.endswith("cloud API said no")
    assert len(decision.action_output) <= autoscaling.MAX_OUTPUT_CHARS
    target = run(autoscaling.get_target, "checkout-web")
    # Asked for 4; nothing confirmed it runs.
    assert (target.desired_capacity, target.current_capacity) == (4, 2)
    worker.run_until_idle()
    assert len(script.calls()) == 1  # a failure is recorded, not retried behind anyone's back


def test_a_command_that_hangs_is_killed_at_its_timeout(db, run, clock, worker, checkout, script):
    make_target(run, action=script("hang", timeout=1))
    minute_at(run, clock, 100)
    worker.run_until_idle()
    decision = run(autoscaling.history, "checkout-web")[0]
    assert decision.action_status == "failed" and decision.action_exit_code is None
    assert "timed out after 1s" in decision.action_output


def test_an_action_left_running_by_a_stopped_worker_is_retried_and_says_so(
    db, run, clock, worker, checkout, script
):
    make_target(run, action=script())
    minute_at(run, clock, 100)
    run(autoscaling.evaluate_due)  # decides; the action is pending
    decision_id = run(autoscaling.history, "checkout-web")[0].id
    # A worker claims the action and dies before it records an outcome.
    claimed = run(autoscaling.claim_action, decision_id)
    assert claimed is not None
    RunScalingActions().run(worker)
    assert script.calls() == []  # its lease has not run out: nobody runs it twice meanwhile
    assert run(autoscaling.history, "checkout-web")[0].action_status == "running"
    clock.advance(seconds=20 + 61)
    RunScalingActions().run(worker)
    decision = run(autoscaling.history, "checkout-web")[0]
    assert decision.action_status == "succeeded" and decision.action_attempts == 2
    assert "attempt 1: outcome unknown" in decision.action_output
    assert script.calls() == [{"to": 4, "env": "4", "attempt": "2"}]


def test_a_stale_running_action_with_a_newer_decision_is_superseded(
    db, run, clock, worker, checkout, script
):
    make_target(run, action=script(), scale_out_cooldown_seconds=0)
    minute_at(run, clock, 100)
    run(autoscaling.evaluate_due)
    first = run(autoscaling.history, "checkout-web")[0].id
    assert run(autoscaling.claim_action, first) is not None  # and its worker dies
    minute_at(run, clock, 100)
    run(autoscaling.evaluate_due)  # 4 -> 8 while the first action's outcome is unknown
    clock.advance(minutes=2)
    RunScalingActions().run(worker)
    rows = {d.id: d for d in run(autoscaling.history, "checkout-web")}
    assert rows[first].action_status == "superseded"
    assert "outcome unknown" in rows[first].action_output
    assert [c["to"] for c in script.calls()] == [8]
    assert run(autoscaling.get_target, "checkout-web").current_capacity == 8


def test_only_site_admins_configure_commands(db, run, clock, checkout, script):
    from mechanisms.core.accounts import get_user
    from mechanisms.core.identity import Principal

    with db.transaction() as session:
        eve = get_user(Ctx(session, system_principal("t"), clock.now()), "eve")
        eve = Principal(user_id=eve.id, username="eve", via="session")
    with pytest.raises(Forbidden):
        run(
            autoscaling.create_target,
            "t1",
            "checkout",
            min_capacity=1,
            max_capacity=2,
            action=script(),
            as_=eve,
        )
    target = run(
        autoscaling.create_target, "t1", "checkout", min_capacity=1, max_capacity=2, as_=eve
    )
    assert target.action == {"kind": "event"}
    with pytest.raises(InvalidInput, match="absolute path"):
        run(
            autoscaling.update_target,
            "t1",
            action={"kind": "command", "argv": ["python3", "x"]},
        )


def test_bad_policy_input_names_the_field_and_writes_nothing(db, run, checkout):
    run(autoscaling.create_target, "t1", "checkout", min_capacity=1, max_capacity=3)
    for bad, field in [
        ({"target_value": 0.0}, "target_value"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"statistic": "median"}, "statistic"),
        ({"period_seconds": 90}, "period_seconds"),
        ({"metric": "bad name"}, "metric"),
    ]:
        settings = {"metric": "cpu", "target_value": 50.0, **bad}
        with pytest.raises(InvalidInput) as caught:
            run(autoscaling.create_policy, "p1", "t1", **settings)
        assert caught.value.details["field"] == field
    assert run(autoscaling.list_policies) == []
    with pytest.raises(InvalidInput, match="max_capacity"):
        run(autoscaling.create_target, "t2", "checkout", min_capacity=5, max_capacity=3)


def test_an_alarm_transition_evaluates_its_policy_at_once(db, run, clock, worker, checkout):
    run(
        alarms.create_alarm,
        "checkout-hot",
        "checkout",
        metric="cpu_utilization",
        match={"service": "checkout"},
        definition={
            "statistic": "avg",
            "comparison": "GreaterThanThreshold",
            "threshold": 80,
            "period_seconds": 60,
            "evaluation_periods": 1,
            "datapoints_to_alarm": 1,
        },
    )
    make_target(run, alarm="checkout-hot", scale_out_cooldown_seconds=0)
    minute_at(run, clock, 200)
    worker.run_until_idle()  # the clock stands still: no second scheduled evaluation
    assert run(alarms.get_alarm, "checkout-hot").state == "ALARM"
    decisions = reversed(run(autoscaling.history, "checkout-web"))
    assert [(d.from_capacity, d.to_capacity, d.trigger) for d in decisions] == [
        (2, 8, "schedule"),
        (8, 10, "alarm:checkout-hot -> ALARM"),
    ]


def test_a_percentile_policy_reads_the_merged_sketch(db, run, clock, worker, checkout):
    make_target(run, metric="latency_ms", statistic="p95", target_value=50.0)
    now = clock.now()
    # Two of twenty requests are slow: the average (56) would ask for 3 units, the p95
    # (200) asks for ceil(2 x 200 / 50) = 8.
    values = [40.0] * 18 + [200.0] * 2
    samples = [
        {
            "name": "latency_ms",
            "labels": {"service": "checkout", "pod": f"p{i % 2}"},
            "value": v,
            "timestamp": (now + timedelta(seconds=1 + i)).timestamp(),
        }
        for i, v in enumerate(values)
    ]
    run(alarms.ingest_json, {"samples": samples})
    clock.advance(minutes=1)
    worker.tick()
    decision = run(autoscaling.history, "checkout-web")[0]
    assert decision.metric_value == pytest.approx(200, rel=0.01)
    assert capacity(run) == 8
