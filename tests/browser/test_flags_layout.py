"""Every flags page at phone and desktop width: nothing makes the whole page scroll
sideways and the browser logs no errors. Screenshots land in the layout screenshots
folder (MECH_SCREENSHOTS=dir keeps them)."""

from __future__ import annotations

from typing import Any

import pytest

from mechanisms.flags import service
from mechanisms.ops import alarms as ops_alarms
from tests.browser.conftest import DESKTOP, PHONE, LiveServer
from tests.browser.test_flags_support import (
    APP,
    AT_ONCE,
    FLAG,
    call,
    no_sideways_scroll,
    seed_experiment,
    seed_shop,
)
from tests.flags.conftest import watched_alarm

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

LONG_KEY = "checkout-redesign-with-a-very-long-key-that-keeps-going-2026"
RICH = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "targets": {"on": ["ada@acme.test", "leo@acme.test", "a-very-long-targeting-key-0123456789"]},
    "rules": [
        {
            "id": "staff-and-europe",
            "description": "people at Acme in Europe get the new checkout first",
            "clauses": [
                {"attribute": "email", "op": "ends_with", "values": ["@acme.test"]},
                {"attribute": "country", "op": "in", "values": ["DE", "FR", "NL", "BE", "AT"]},
            ],
            "serve": {
                "split": [{"variant": "on", "percent": 30}, {"variant": "off", "percent": 70}]
            },
        },
        {
            "id": "testers",
            "clauses": [{"attribute": "key", "op": "segment_match", "values": ["beta-testers"]}],
            "serve": {"variant": "on"},
        },
    ],
    "fallthrough": {"variant": "off"},
}


def _seed(live: LiveServer) -> tuple[int, int]:
    seed_shop(live)
    experiment = seed_experiment(live, units=80)
    call(live, service.set_segment, APP, "beta-testers", {"included": ["user-1", "user-2"]})
    call(live, service.create_flag, APP, LONG_KEY, kind="kill_switch", description="x " * 60)
    call(live, service.set_config, APP, FLAG, "gamma", RICH, strategy=AT_ONCE, comment="rich")
    call(live, watched_alarm, "checkout-latency-p99")
    change = call(
        live,
        service.set_config,
        APP,
        FLAG,
        "beta",
        RICH,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency-p99"]},
    )
    call(live, ops_alarms.set_state, "checkout-latency-p99", "OK", "all quiet")
    return experiment, change.deployment.id


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_flags_pages_fit_the_screen_and_log_no_errors(
    live: LiveServer, signed_in: Any, shots_dir: Any, viewport: dict[str, int]
) -> None:
    experiment, deployment = _seed(live)
    width = "phone" if viewport is PHONE else "desktop"
    pages = {
        "apps": ("/flags", "Flags"),
        "app": (f"/flags/{APP}", "Shop"),
        "flag": (f"/flags/{APP}/{FLAG}", FLAG),
        "editor": (f"/flags/{APP}/{FLAG}/gamma/edit", f"Edit {FLAG}"),
        "history": (f"/flags/{APP}/{FLAG}/history?env=gamma", "History"),
        "deployment": (f"/flags/{APP}/{FLAG}/deployments/{deployment}", "Deployment"),
        "experiment": (f"/flags/experiments/{experiment}", "Experiment"),
        "segments": (f"/flags/{APP}/-/segments", "Segments"),
        "long-flag": (f"/flags/{APP}/{LONG_KEY}", LONG_KEY[:20]),
    }
    page = signed_in("eve", viewport, path="/flags")
    for name, (path, heading) in pages.items():
        page.goto(path)
        assert page.get_by_role("heading", level=1).first.inner_text().startswith(heading), name
        no_sideways_scroll(page)
        page.screenshot(path=str(shots_dir / f"flags-{name}-{width}.png"), full_page=True)
    assert page.console_errors.unexpected() == []


def test_flags_list_filters_as_you_type(live: LiveServer, signed_in: Any) -> None:
    _seed(live)
    page = signed_in("eve", path=f"/flags/{APP}")
    rows = page.locator("#flag-rows tr[data-flag]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.flag)")) == sorted(
        ["checkout", FLAG, LONG_KEY]
    )
    beta = page.locator(f'tr[data-flag="{FLAG}"] td[data-env="beta"]')
    assert "rolling v2 20 %" in beta.inner_text(), "a deployment shows its share"
    page.get_by_label("Search by key").fill("redesign")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-flag") == LONG_KEY
    page.wait_for_url("**q=redesign*")  # the filter is in the address, to share or go back to
    page.get_by_label("Search by key").fill("")
    expect(rows).to_have_count(3)
    page.get_by_label("Filter by kind").select_option("experiment")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-flag") == "checkout"
    page.get_by_label("Stale only").check()
    page.get_by_text("No flags match.").wait_for()
    assert page.console_errors.unexpected() == []
