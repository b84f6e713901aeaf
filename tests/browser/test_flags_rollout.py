"""The rollout chart of a stepped deployment, rolling it back with a reason, and the kill
switch."""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms.flags import deployments as flag_deployments  # `deployments` is a local below
from mechanisms.flags import service
from tests.browser.conftest import LiveServer
from tests.browser.test_flags_support import (
    APP,
    FLAG,
    accept_dialogs,
    call,
    no_sideways_scroll,
    seed_shop,
)

pytestmark = pytest.mark.browser
ON_FOR_EVERYONE = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "fallthrough": {"variant": "on"},
}


def _start_linear_deployment(live: LiveServer) -> int:
    change = call(
        live,
        service.set_config,
        APP,
        FLAG,
        "beta",
        ON_FOR_EVERYONE,
        strategy="Linear20PercentEvery6Minutes",
        comment="turn it on",
    )
    return change.deployment.id


def test_rollout_chart_shows_the_step_and_rolls_back(
    live: LiveServer, signed_in: Any, shots_dir: Any
) -> None:
    seed_shop(live)
    deployment = _start_linear_deployment(live)
    page = signed_in("eve", path=f"/flags/{APP}/{FLAG}")

    # The flag page shows the deployment under way in beta, with its chart.
    beta = page.locator("#env-beta")
    rollout = beta.get_by_test_id("rollout")
    assert rollout.get_attribute("data-state") == "rolling"
    assert rollout.get_attribute("hx-trigger") == "every 3s", "it refreshes itself"
    assert rollout.get_by_test_id("rollout-chart").is_visible()
    assert rollout.get_by_test_id("step-point").count() == 1
    assert rollout.get_by_test_id("planned-steps").count() == 1
    assert rollout.get_by_test_id("rollout-percent").inner_text() == "20 %"
    assert (
        "Step 1 of 5: 20 % of keys get version 2"
        in rollout.get_by_test_id("rollout-caption").inner_text()
    )

    # Its own page: the same chart, and the rollback.
    rollout.get_by_role("link", name=f"Deployment {deployment}").click()
    page.wait_for_url(f"**/deployments/{deployment}")
    page.screenshot(path=str(shots_dir / "flags-deployment-rolling.png"), full_page=True)
    chart = page.get_by_test_id("rollout")
    assert chart.get_by_test_id("deployment-state").inner_text() == "rolling"
    messages = accept_dialogs(page)
    page.get_by_label("Reason for the rollback").fill("checkout errors in beta")
    page.get_by_role("button", name="Roll back").click()
    page.get_by_test_id("deployment-reason").wait_for()
    assert messages == [
        f"Roll back deployment {deployment}? Everyone in Beta gets version 1 again."
    ]
    chart = page.get_by_test_id("rollout")
    assert chart.get_attribute("data-state") == "rolled_back"
    assert chart.get_by_test_id("deployment-state").inner_text() == "rolled back"
    assert chart.get_attribute("hx-trigger") is None, "a finished deployment stops refreshing"
    assert "checkout errors in beta" in page.get_by_test_id("deployment-reason").inner_text()
    assert "Rolled back to version 1" in chart.get_by_test_id("rollout-caption").inner_text()
    assert not page.get_by_role("button", name="Roll back").is_visible()
    no_sideways_scroll(page)
    page.screenshot(path=str(shots_dir / "flags-deployment-rolled-back.png"), full_page=True)
    assert page.console_errors.unexpected() == []


def test_kill_switch_turns_the_flag_off_everywhere(live: LiveServer, signed_in: Any) -> None:
    seed_shop(live)
    _start_linear_deployment(live)
    page = signed_in("eve", path=f"/flags/{APP}/{FLAG}")
    messages = accept_dialogs(page)
    kill = page.get_by_test_id("kill")
    kill.click()
    assert messages == [], "the browser asks for a reason first"
    page.get_by_label("Reason for the kill switch").fill("payments fail at checkout")
    kill.click()
    page.wait_for_url("**done=killed")
    assert messages == [f"Kill {FLAG} in every environment?"]
    assert "Killed" in page.get_by_test_id("notice").inner_text()
    # Beta's version 2 was being deployed: the kill switch's copy is version 3 there.
    for env, live_number in (("beta", 3), ("gamma", 2), ("prod", 2)):
        status = page.locator(f"#env-{env}").get_by_test_id("env-status").inner_text()
        assert "off" in status and f"version {live_number} live" in status, status
    assert page.get_by_test_id("rollout").count() == 0, "the deployment was stopped"
    deployments = call(live, flag_deployments.deployments, APP, FLAG, "beta")
    assert [d.state for d in deployments] == ["complete", "rolled_back"]
    assert deployments[1].reason == "kill switch: payments fail at checkout"
    assert page.console_errors.unexpected() == []


def test_a_refused_action_says_why_in_the_page(live: LiveServer, signed_in: Any) -> None:
    """A viewer sees no buttons; a service refusal (here: restoring the live version's
    while a deployment runs) becomes a message, never a traceback."""
    seed_shop(live)
    _start_linear_deployment(live)
    viewer = signed_in("vic", path=f"/flags/{APP}/{FLAG}")
    assert viewer.get_by_test_id("kill").count() == 0
    assert viewer.get_by_test_id("edit-beta").count() == 0
    viewer.close()

    page = signed_in("eve", path=f"/flags/{APP}/{FLAG}")
    accept_dialogs(page)
    beta = page.locator("#env-beta")
    beta.get_by_text("Restore an older version").click()
    beta.get_by_label("Version to restore in Beta").select_option("2")
    beta.get_by_role("button", name="Restore").click()
    flash = page.locator("#flash")
    flash.wait_for()
    assert "still running" in flash.inner_text()
    assert "Traceback" not in page.content()
    assert page.console_errors.unexpected(409) == []
