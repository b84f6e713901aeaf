"""The deploys part of the demo: pipelines on the ops demo's services, versions in flight
with test results (one suite failing), the weekend window and holiday freeze, a blocked
promotion, a break-glass request waiting for its second approver and one completed with
its review recorded."""

from __future__ import annotations

from mechanisms import demo, modules
from mechanisms.core.worker import Worker
from mechanisms.deploys import breakglass, pipelines, windows


def test_the_demo_tells_the_deploy_story(db, clock, run):
    modules.import_all()
    assert demo.seed(db, clock).created
    assert [p.service_key for p in run(pipelines.list_pipelines)] == ["checkout", "search"]
    running = {
        s["name"]: s["deployment"]["digest"] for s in run(pipelines.stage_states, "checkout")
    }
    assert running == {
        "beta": "sha256:c0ffee03f1e2d3c4b5a6",
        "gamma": "sha256:c0ffee02d4e5f6a7b8c9",
        "prod": "sha256:c0ffee01a1b2c3d4e5f6",
    }
    to_prod = run(pipelines.gate, "checkout", "prod", "checkout-2026.11.2")
    assert [b.code for b in to_prod.blockers] == ["block_window"]
    to_gamma = run(pipelines.gate, "checkout", "gamma", "checkout-2026.11.3")
    assert "tests_failed" in [b.code for b in to_gamma.blockers]
    assert {w.uid for w in run(windows.list_windows)} >= {"weekend", "holidays-de"}

    waiting = run(breakglass.list_requests, "checkout", open_only=True)
    [described] = [run(breakglass.describe, r) for r in waiting]
    assert described["status"] == "pending" and described["approvals"] == ["lena"]
    assert described["ticket"]["severity"] == "SEV1"
    [done] = run(breakglass.list_requests, "search")
    assert done.status == "used"
    [review] = run(breakglass.list_reviews, False)
    assert review.closed_at is not None and review.why
    kinds = {e.kind for e in run(pipelines.timeline, "checkout")}
    assert {"promotion_blocked", "breakglass_requested", "breakglass_approved"} <= kinds

    # The worker's first ticks change none of it (the request waits a day).
    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    assert run(breakglass.list_requests, "checkout", open_only=True)
