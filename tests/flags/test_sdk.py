"""The Python SDK against the running server: ETag polling, server-sent events, serving
the last known rule set while the server is down, and the OpenFeature provider."""

from __future__ import annotations

import time

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from mechanisms.app import create_app
from mechanisms.core.clock import SystemClock
from mechanisms.core.config import Settings
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.flags import deployments, service
from mechanisms.flags.domain import RuleSet
from mechanisms.sdk import FlagsClient, MechanismsProvider
from tests.conftest import seed_org
from tests.flags.conftest import watched_alarm
from tests.support.server import serving

ON = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "fallthrough": {"variant": "on"},
}


def eventually(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def shop(db):
    """The org and an app 'shop' with one boolean flag, on the real clock; returns (org, run)."""
    clock = SystemClock()
    org = seed_org(db, clock)

    def run(fn, *args, **kwargs):
        with db.transaction() as session:
            return fn(Ctx(session, system_principal("test"), clock.now()), *args, **kwargs)

    run(service.create_app, "shop", "Shop", "payments")
    run(service.create_flag, "shop", "checkout-v2")
    return org, run


@pytest.fixture
def live(sqlite_db):
    """The app served for real over the 'shop' data; yields (url, viewer token, run)."""
    org, run = shop(sqlite_db)
    with serving(create_app(sqlite_db, clock=SystemClock(), settings=Settings())) as url:
        yield url, org.tokens["vic"], run


def test_polling_picks_up_changes_and_survives_the_server_going_away(sqlite_db):
    org, run = shop(sqlite_db)
    with serving(create_app(sqlite_db, clock=SystemClock(), settings=Settings())) as url:
        client = FlagsClient(
            url,
            app="shop",
            environment="beta",
            token=org.tokens["vic"],
            poll_seconds=0.1,
            report_exposures=False,
        )
        assert client.wait_until_ready(5)
        assert client.boolean("checkout-v2", True, {"targetingKey": "u1"}) is False
        run(service.set_config, "shop", "checkout-v2", "beta", ON)
        assert eventually(
            lambda: client.boolean("checkout-v2", False, {"targetingKey": "u1"}) is True
        )
    # The server is gone: the client keeps serving what it last knew.
    assert eventually(lambda: client.last_error is not None)
    assert client.boolean("checkout-v2", False, {"targetingKey": "u1"}) is True
    assert client.evaluate("checkout-v2", {"targetingKey": "u1"}).reason == "DEFAULT"
    client.close()


def test_streaming_delivers_changes_as_they_happen(live):
    url, token, run = live
    client = FlagsClient(
        url,
        app="shop",
        environment="beta",
        token=token,
        mode="stream",
        poll_seconds=60,
        report_exposures=False,
    )
    assert client.wait_until_ready(5)
    assert client.boolean("checkout-v2", True, {"targetingKey": "u1"}) is False
    run(service.set_config, "shop", "checkout-v2", "beta", ON)
    # Poll every 60 s: only the stream can bring this change within seconds.
    assert eventually(
        lambda: client.boolean("checkout-v2", False, {"targetingKey": "u1"}) is True, timeout=8
    )
    client.close()


def test_a_bad_token_keeps_the_bootstrap_rule_set(live):
    url, _token, run = live
    run(service.set_config, "shop", "checkout-v2", "beta", ON)
    bootstrap = RuleSet(environment="beta")
    client = FlagsClient(
        url,
        app="shop",
        environment="beta",
        token="mech_wrong",
        bootstrap=bootstrap,
        poll_seconds=0.1,
        report_exposures=False,
    )
    assert eventually(lambda: client.last_error is not None)
    assert "401" in client.last_error
    assert client.evaluate("checkout-v2", {}).error_code == "FLAG_NOT_FOUND"
    client.close()


def test_the_openfeature_provider(live):
    url, token, run = live
    run(service.set_config, "shop", "checkout-v2", "beta", {**ON, "targets": {"off": ["blocked"]}})
    run(
        service.create_flag, "shop", "retries", flag_type="number", variants={"few": 2, "many": 5.5}
    )
    client = FlagsClient(url, app="shop", environment="beta", token=token, report_exposures=False)
    assert client.wait_until_ready(5)
    api.set_provider(MechanismsProvider(client))
    try:
        of = api.get_client()
        details = of.get_boolean_details("checkout-v2", False, EvaluationContext("u1"))
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.DEFAULT)
        assert details.flag_metadata["version"] == 2
        blocked = of.get_boolean_details("checkout-v2", True, EvaluationContext("blocked"))
        assert (blocked.value, blocked.reason) == (False, Reason.TARGETING_MATCH)
        assert of.get_integer_value("retries", 0, EvaluationContext("u1")) == 2
        assert of.get_float_value("retries", 0.0, EvaluationContext("u1")) == 2
        missing = of.get_boolean_details("nope", True)
        assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        mismatch = of.get_string_details("checkout-v2", "d", EvaluationContext("u1"))
        assert (mismatch.value, mismatch.error_code) == ("d", ErrorCode.TYPE_MISMATCH)
    finally:
        api.clear_providers()


def test_an_alarm_through_the_api_rolls_back_what_the_sdk_serves(live, sqlite_db):
    """End to end: an alarm set over HTTP fires, the worker rolls the deployment back,
    and an SDK client serves the previous version again."""
    import httpx

    from mechanisms.core.worker import Worker

    url, token, run = live
    run(watched_alarm, "checkout-errors")
    run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON,
        strategy="Linear50PercentEvery30Seconds",
        monitors={"alarms": ["checkout-errors"]},
    )
    client = FlagsClient(
        url, app="shop", environment="beta", token=token, poll_seconds=0.1, report_exposures=False
    )
    assert client.wait_until_ready(5)
    keys = [f"user-{i}" for i in range(400)]
    assert (
        0.3
        < sum(client.boolean("checkout-v2", False, {"targetingKey": k}) for k in keys) / len(keys)
        < 0.7
    )
    admin = {"Authorization": f"Bearer {live_admin_token(sqlite_db)}"}
    answer = httpx.put(
        f"{url}/api/v1/ops/alarms/checkout-errors/state",
        json={"state": "ALARM", "reason": "5xx at 3 %"},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    worker = Worker(sqlite_db)
    try:
        worker.tick()
    finally:
        worker.close()
    assert eventually(
        lambda: not any(client.boolean("checkout-v2", False, {"targetingKey": k}) for k in keys)
    )
    deployment = run(deployments.deployments, "shop", "checkout-v2", "beta")[0]
    assert deployment.state == "rolled_back" and "checkout-errors" in deployment.reason
    client.close()


def live_admin_token(db) -> str:
    from mechanisms.core import accounts

    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), SystemClock().now())
        return accounts.create_token(ctx, "ada", "alarm-test", "admin")[1]
