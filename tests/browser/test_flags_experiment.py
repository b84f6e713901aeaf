"""The experiment results page: exposures and the sample-ratio check, per metric a table
and an interval plot, guardrails, comments, and the one-step decision."""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms.flags import deployments, experiments
from tests.browser.conftest import PHONE, LiveServer
from tests.browser.test_flags_support import (
    APP,
    call,
    no_sideways_scroll,
    seed_experiment,
    seed_shop,
)

pytestmark = pytest.mark.browser


def test_results_with_interval_plots_and_a_decision(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed_shop(live)
    experiment = seed_experiment(live)
    found = call(live, experiments.results, experiment)
    page = signed_in("eve", path=f"/flags/experiments/{experiment}")

    assert page.get_by_test_id("experiment-state").inner_text() == "running"
    for variant, count in found.exposures.items():
        row = page.locator(f'table.exposures tr[data-variant="{variant}"]')
        assert str(count) in row.inner_text()
    srm = page.get_by_test_id("srm").inner_text()
    assert ("fits the split" in srm) != found.sample_ratio.mismatch

    plots = page.get_by_test_id("interval-plot")
    assert plots.count() == 2, "one interval plot per metric"
    for n in range(2):
        plot = plots.nth(n)
        assert plot.get_by_test_id("confidence-interval").count() == 1
        assert plot.get_by_test_id("always-valid").count() == 1
        assert plot.locator("svg").bounding_box()["width"] > 200
    purchase = page.locator('section[data-metric="purchase"]')
    treatment = purchase.locator('tr[data-variant="treatment"]').inner_text()
    assert "pp" in treatment and "%" in treatment, treatment
    latency = page.locator('section[data-metric="latency_ms"]')
    # Six milliseconds slower out of a hundred, over hundreds of units: clearly worse.
    assert latency.locator(".verdict").text_content() == "worse"
    assert page.get_by_test_id("guardrail").count() == 1
    assert "checked out quickly" in page.locator(".comments").inner_text()
    page.screenshot(path=str(shots_dir / "flags-experiment-desktop.png"), full_page=True)

    # Deciding: one click plus the reason.
    page.get_by_label("Reason").fill("treatment converts better; latency within bound")
    page.get_by_role("button", name="Ship treatment").click()
    page.get_by_test_id("decision").wait_for()
    assert page.get_by_test_id("experiment-state").inner_text() == "shipped"
    assert "treatment converts better" in page.get_by_test_id("decision").inner_text()
    deployment = call(live, deployments.deployments, APP, "checkout", "gamma")[0]
    assert deployment.strategy_name == "Linear20PercentEvery6Minutes"
    assert deployment.state == "rolling"
    assert page.console_errors.unexpected() == []


def test_results_fit_a_phone(live: LiveServer, signed_in: Any, shots_dir: Any) -> None:
    seed_shop(live)
    experiment = seed_experiment(live, units=120)
    page = signed_in("ada", PHONE, path=f"/flags/experiments/{experiment}")
    assert page.get_by_test_id("interval-plot").count() == 2
    no_sideways_scroll(page)
    page.screenshot(path=str(shots_dir / "flags-experiment-phone.png"), full_page=True)
    assert page.console_errors.unexpected() == []
