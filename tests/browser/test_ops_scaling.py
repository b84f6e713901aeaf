"""The scaling page of a target: the capacity history graph (desired capacity as a step
line, the metric against its target) and the history table beneath it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.ops import alarms, autoscaling
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def call(live: LiveServer, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with live.db.transaction() as session:
        return fn(Ctx(session, system_principal("test"), datetime.now(UTC)), *args, **kwargs)


def test_the_graph_steps_up_where_the_policy_scaled_out(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    call(live, alarms.create_service, "checkout", "Checkout", "payments")
    call(
        live,
        autoscaling.create_target,
        "checkout-web",
        "checkout",
        min_capacity=1,
        max_capacity=10,
        desired_capacity=2,
    )
    call(
        live,
        autoscaling.create_policy,
        "checkout-cpu",
        "checkout-web",
        metric="cpu_utilization",
        match={"service": "checkout"},
        target_value=50.0,
    )
    now = datetime.now(UTC)
    samples = [
        {
            "name": "cpu_utilization",
            "labels": {"service": "checkout"},
            "value": 100.0,
            "timestamp": (now - timedelta(seconds=s)).timestamp(),
        }
        for s in range(5, 180, 5)
    ]
    call(live, alarms.ingest_json, {"samples": samples})
    decision = call(live, autoscaling.evaluate_now, "checkout-cpu")
    assert (decision.from_capacity, decision.to_capacity) == (2, 4)

    page = signed_in("vic", path="/ops/scaling")
    page.get_by_role("link", name="checkout-web").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("desired").inner_text() == "4"
    chart = page.get_by_test_id("scaling-chart")
    assert chart.is_visible()
    assert "capacity from 2 to 4 over 1 change(s)" in chart.get_attribute("aria-label")
    assert "against a target of 50" in chart.get_attribute("aria-label")
    capacity = page.get_by_test_id("capacity-line").get_attribute("d")
    # Starts at 2 of 10 units (y = 240 of 300), steps to 4 (y = 180), runs to the end.
    assert capacity.startswith("M0.0,240.0") and "V180.0" in capacity
    assert capacity.endswith("H1000.0")
    assert page.get_by_test_id("metric-line").get_attribute("d").startswith("M")
    target_y = float(page.get_by_test_id("target-line").get_attribute("y1"))
    # The metric (100) sits above its target (50) on the same scale.
    metric_ys = [
        float(p.split(",")[1])
        for p in page.get_by_test_id("metric-line").get_attribute("d").split()
    ]
    assert all(y < target_y for y in metric_ys)
    row = page.locator("tr[data-decision]").first
    assert "manual" in row.inner_text() and "scaling out from 2 to 4" in row.inner_text()
    page.screenshot(path=str(shots_dir / "ops-scaling-target.png"), full_page=True)
    assert page.console_errors == []
