"""Seeding for the flags browser tests (no tests here): an application owned by the
payments team, flags, and calls into the flags service as a person or the system."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.identity import Principal, system_principal
from mechanisms.flags import deployments, experiments, service
from mechanisms.flags.domain import Engine
from tests.browser.conftest import LiveServer

APP = "shop"
FLAG = "checkout-v2"
# A strategy that completes at once (the predefined ones bake for minutes).
AT_ONCE = "AtOnceNoBake"
SPLIT = {
    "variants": {"control": "old", "treatment": "new"},
    "off_variant": "control",
    "fallthrough": {
        "split": [{"variant": "control", "percent": 50}, {"variant": "treatment", "percent": 50}]
    },
}


def person(live: LiveServer, username: str) -> Principal:
    with live.db.transaction(write=False) as session:
        user = accounts.find_user(session, username)
        return Principal(
            user_id=user.id,
            username=user.username,
            via="session",
            is_site_admin=user.is_site_admin,
        )


def call(
    live: LiveServer,
    fn: Callable[..., Any],
    *args: Any,
    as_: Principal | None = None,
    **kwargs: Any,
) -> Any:
    """Call a service function in one committed unit of work."""
    with live.db.transaction() as session:
        ctx = Ctx(session, as_ or system_principal("test"), datetime.now(UTC))
        return fn(ctx, *args, **kwargs)


def seed_shop(live: LiveServer) -> None:
    """shop (beta, gamma, prod needing approval) owned by payments, with the boolean flag
    checkout-v2 and a zero-bake strategy."""
    call(live, service.create_app, APP, "Shop", "payments")
    call(live, service.create_flag, APP, FLAG, description="the new checkout")
    call(
        live,
        deployments.create_strategy,
        AT_ONCE,
        {"type": "all_at_once", "bake_seconds": 0},
        "everyone at once, no bake",
    )


def seed_experiment(live: LiveServer, units: int = 400) -> int:
    """A running experiment on the string flag ``checkout`` in gamma, with exposures and
    feedback where the treatment converts better and is a little slower."""
    call(
        live,
        service.create_flag,
        APP,
        "checkout",
        flag_type="string",
        kind="experiment",
        variants={"control": "old", "treatment": "new"},
        off_variant="control",
    )
    call(live, service.set_config, APP, "checkout", "gamma", SPLIT, strategy=AT_ONCE)
    experiment = call(
        live,
        experiments.start,
        APP,
        "checkout",
        "gamma",
        control="control",
        metrics=[
            {"name": "purchase", "kind": "conversion"},
            {
                "name": "latency_ms",
                "kind": "numeric",
                "higher_is_better": False,
                "guardrail": {"direction": "increase_is_bad", "bound": 0.5},
            },
        ],
        hypothesis="the new checkout sells more",
    )
    with live.db.transaction(write=False) as session:
        ctx = Ctx(session, system_principal("test"), datetime.now(UTC))
        app = service.get_app(ctx, APP)
        rules = Engine(service.ruleset(session, app, service.get_environment(ctx, app, "gamma")))
    rng = random.Random(7)
    exposures, feedback = [], []
    for n in range(units):
        key = f"user-{n}"
        variant = rules.evaluate("checkout", {"targetingKey": key}).variant
        exposures.append({"flag": "checkout", "targetingKey": key, "variant": variant})
        slower = 6.0 if variant == "treatment" else 0.0
        feedback.append(
            {"targetingKey": key, "metric": "latency_ms", "value": 100 + slower + rng.gauss(0, 10)}
        )
        if rng.random() < (0.2 if variant == "treatment" else 0.1):
            feedback.append({"targetingKey": key, "metric": "purchase"})
        if n % 40 == 0:
            feedback.append(
                {
                    "targetingKey": key,
                    "metric": "rating",
                    "value": 4,
                    "comment": f"checked out quickly ({variant})",
                }
            )
    call(live, experiments.record_exposures, APP, "gamma", exposures)
    call(live, experiments.record_feedback, APP, "gamma", feedback)
    return experiment.id


def accept_dialogs(page: Any) -> list[str]:
    """Accept every confirmation the page asks for; returns their messages."""
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return messages


def no_sideways_scroll(page: Any) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{page.url}: the page is {scroll}px wide in a {inner}px window"
