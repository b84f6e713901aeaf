"""A service with a pipeline: checkout (team payments, org acme), beta → prod, where beta
requires the integration suite and bakes 30 minutes watching the checkout-errors alarm."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mechanisms.core import accounts
from mechanisms.core.identity import Principal
from mechanisms.core.worker import Worker
from mechanisms.deploys import pipelines
from mechanisms.ops import alarms

ALARM_DEFINITION = {
    "statistic": "max",
    "comparison": "GreaterThanThreshold",
    "threshold": 10,
    "period_seconds": 60,
    "evaluation_periods": 1,
    "datapoints_to_alarm": 1,
}

PASSING = b"""<testsuite name="integration" tests="2">
<testcase classname="checkout" name="pays"/><testcase classname="checkout" name="refunds"/>
</testsuite>"""
FAILING = b"""<testsuite name="integration" tests="2">
<testcase classname="checkout" name="pays"><failure message="402 != 200">boom</failure></testcase>
<testcase classname="checkout" name="refunds"/>
</testsuite>"""

STAGES = [
    {
        "name": "beta",
        "required_suites": ["integration"],
        "bake_minutes": 30,
        "alarms": ["checkout-errors"],
    },
    {"name": "prod", "required_suites": ["integration"]},
]


@pytest.fixture
def as_user(db) -> Callable[[str], Principal]:
    """as_user("eve") → the principal of eve's web session (a bot's for "robot")."""

    def principal(username: str) -> Principal:
        with db.transaction(write=False) as session:
            user = accounts.find_user(session, username)
            return Principal(
                user_id=user.id,
                username=user.username,
                via="session" if not user.is_bot else "token",
                is_site_admin=user.is_site_admin,
                is_bot=user.is_bot,
            )

    return principal


@pytest.fixture
def checkout(org, run):
    return create_checkout(run)


def create_checkout(run) -> str:
    # Sam writes the changes the tests ship (an author is an account of the system).
    run(accounts.create_user, "sam", email="sam@acme.example")
    run(alarms.create_service, "checkout", "Checkout", "payments")
    run(
        alarms.create_alarm,
        "checkout-errors",
        "checkout",
        metric="errors",
        definition=ALARM_DEFINITION,
        severity=2,
    )
    run(alarms.evaluate_due)
    run(pipelines.set_pipeline, "checkout", STAGES)
    return "checkout"


def work(db, clock) -> int:
    worker = Worker(db, clock=clock)
    try:
        return worker.run_until_idle()
    finally:
        worker.close()


def ship(run, version: str = "v1", digest: str = "sha256:aaa", author: str | None = "sam"):
    """Register a version and upload a passing integration run for it."""
    run(pipelines.register_version, "checkout", version, digest, author)
    run(pipelines.upload_tests, "checkout", digest, "integration", PASSING)
    return digest
