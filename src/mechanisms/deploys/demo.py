"""The deploys part of the demo organisation, on the ops demo's services.

checkout and search each have a pipeline beta → gamma → prod. Three days ago version 1
of each went all the way; two days ago search shipped a fix through a storage-migration
freeze with break-glass (two approvers, one a leader), whose follow-up review is recorded.
Yesterday checkout 2 reached gamma; its way into prod is blocked by today's peak-season
freeze, and erin's break-glass request waits for a second approver. checkout 3 is in beta
with its end-to-end suite failing. An org-wide weekend window (Fri 15:00 – Mon 09:00
Europe/Berlin) and German public holidays block every service.

The past is written with a clock set back, so the timeline reads as it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mechanisms.core.context import Ctx
from mechanisms.demo import acting_as, extend
from mechanisms.deploys import breakglass, pipelines, windows
from mechanisms.ops import tickets

STAGES: dict[str, list[dict[str, Any]]] = {
    "checkout": [
        {"name": "beta", "required_suites": ["integration"], "bake_minutes": 30},
        {"name": "gamma", "required_suites": ["integration", "e2e"], "bake_minutes": 60},
        {"name": "prod", "required_suites": ["integration", "e2e"]},
    ],
    "search": [
        {"name": "beta", "required_suites": ["integration"], "bake_minutes": 30},
        {
            "name": "gamma",
            "required_suites": ["integration"],
            "bake_minutes": 60,
            "alarms": ["search-cpu-high"],
        },
        {"name": "prod", "required_suites": ["integration"]},
    ],
}
WEEKEND = {
    "kind": "recurring",
    "rrule": "FREQ=WEEKLY;BYDAY=FR",
    "dtstart": "2026-01-02T15:00:00",
    "end_time": "09:00",
    "days_later": 3,
    "tz": "Europe/Berlin",
}
HOLIDAYS = {"kind": "holidays", "country": "DE", "tz": "Europe/Berlin", "days_before": 1}


def _suite(name: str, failing: bool = False) -> str:
    broken = '<failure message="payment page times out">timeout after 30 s</failure>'
    return (
        f'<testsuite name="{name}" tests="3">'
        f'<testcase classname="{name}" name="pays"/>'
        f'<testcase classname="{name}" name="refunds"/>'
        f'<testcase classname="{name}" name="shows receipt">{broken if failing else ""}</testcase>'
        "</testsuite>"
    )


Act = Callable[..., Any]


# The demo person acting at a given time (break-glass counts people only).
_as = acting_as


def _at(ctx: Ctx, when: datetime) -> Ctx:
    return Ctx(ctx.session, ctx.principal, when)


def _ship(ctx: Ctx, service: str, artifact: str, digest: str, author: str, e2e_fails=False):
    pipelines.register_version(ctx, service, artifact, digest, author)
    pipelines.upload_tests(ctx, service, digest, "integration", _suite("integration"))
    if service == "checkout":
        pipelines.upload_tests(ctx, service, digest, "e2e", _suite("e2e", failing=e2e_fails))


def _promote(ctx: Ctx, service: str, stage: str, digest: str) -> datetime:
    """Promote, let the bake finish, and return when it did."""
    _, deployment = pipelines.promote(ctx, service, stage, digest)
    assert deployment is not None, f"demo promotion of {service} into {stage} was blocked"
    pipelines.advance_bake(_at(ctx, deployment.bake_until), deployment.id)
    return deployment.bake_until + timedelta(minutes=5)


def _through(ctx: Ctx, service: str, stages: list[str], digest: str) -> datetime:
    at = ctx.now
    for stage in stages:
        at = _promote(_at(ctx, at), service, stage, digest)
    return at


@extend
def seed_deploys(ctx: Ctx) -> None:
    now = ctx.now
    for service, stages in STAGES.items():
        pipelines.set_pipeline(_at(ctx, now - timedelta(days=4)), service, stages)
    seed_first_versions(ctx, now - timedelta(days=3))
    seed_completed_break_glass(ctx, now - timedelta(days=2))
    seed_versions_in_flight(ctx, now - timedelta(days=1))
    seed_waiting_break_glass(ctx, now)
    # The calendars come last: they are evaluated at each promotion's instant, and the
    # history above happened on weekdays of the demo's choosing, not of the calendar's.
    windows.create_window(ctx, "org", "acme", WEEKEND, "no deploys over the weekend", "weekend")
    windows.create_window(ctx, "org", "acme", HOLIDAYS, "German public holidays", "holidays-de")


def seed_first_versions(ctx: Ctx, at: datetime) -> None:
    erin, sam = _as(ctx, "erin", at), _as(ctx, "sam", at)
    _ship(erin, "checkout", "checkout-2026.11.1", "sha256:c0ffee01a1b2c3d4e5f6", "lena")
    _ship(sam, "search", "search-2026.11.1", "sha256:5ea4c401a1b2c3d4e5f6", "sam")
    _through(erin, "checkout", ["beta", "gamma", "prod"], "sha256:c0ffee01a1b2c3d4e5f6")
    _through(sam, "search", ["beta", "gamma", "prod"], "sha256:5ea4c401a1b2c3d4e5f6")


def seed_completed_break_glass(ctx: Ctx, at: datetime) -> None:
    """search 2 fixes stale results during a migration freeze on search's prod."""
    sam = _as(ctx, "sam", at)
    digest = "sha256:5ea4c402b7e8f9a0b1c2"
    _ship(sam, "search", "search-2026.11.2", digest, "evan")
    ready = _through(sam, "search", ["beta", "gamma"], digest)
    windows.freeze(
        _at(ctx, ready - timedelta(minutes=1)),
        "stage",
        "search/prod",
        ready + timedelta(hours=3),
        "index storage migration",
    )
    ticket = tickets.create(_as(ctx, "sam", ready), "search", "Results are hours stale", 2)
    row = breakglass.request(
        _as(ctx, "sam", ready),
        "search",
        "prod",
        digest,
        "Stale results for every query; the fix only touches the indexer's schedule.",
        f"#{ticket.id}",
    )
    for minutes, who in ((6, "oliver"), (9, "alice")):
        breakglass.approve(
            _as(ctx, who, ready + timedelta(minutes=minutes)),
            row.id,
            service="search",
            stage="prod",
            digest=digest,
            comment="diff read; indexer only",
        )
    shipped = ready + timedelta(minutes=12)
    _promote(_as(ctx, "sam", shipped), "search", "prod", digest)
    [review] = [r for r in breakglass.list_reviews(_at(ctx, shipped)) if r.request_id == row.id]
    breakglass.close_review(
        _as(ctx, "sam", shipped + timedelta(hours=20)),
        review.id,
        "search-2026.11.2 reached prod during the migration freeze; results were fresh again "
        "within ten minutes and the migration finished on time.",
        "Users saw hours-old results; waiting three hours for the freeze to end was worse "
        "than a change to the indexer's schedule alone.",
    )


def seed_versions_in_flight(ctx: Ctx, at: datetime) -> None:
    erin = _as(ctx, "erin", at)
    _ship(erin, "checkout", "checkout-2026.11.2", "sha256:c0ffee02d4e5f6a7b8c9", "erin")
    _through(erin, "checkout", ["beta", "gamma"], "sha256:c0ffee02d4e5f6a7b8c9")
    later = _as(ctx, "erin", at + timedelta(hours=6))
    digest = "sha256:c0ffee03f1e2d3c4b5a6"
    _ship(later, "checkout", "checkout-2026.11.3", digest, "erin", e2e_fails=True)
    _promote(later, "checkout", "beta", digest)


def seed_waiting_break_glass(ctx: Ctx, at: datetime) -> None:
    """Today's peak-season freeze blocks checkout 2 from prod; erin asks to go through."""
    windows.freeze(
        _at(ctx, at - timedelta(minutes=30)),
        "stage",
        "checkout/prod",
        at + timedelta(days=2),
        "peak-season code freeze",
    )
    digest = "sha256:c0ffee02d4e5f6a7b8c9"
    erin = _as(ctx, "erin", at - timedelta(minutes=20))
    pipelines.promote(erin, "checkout", "prod", digest)  # blocked, and recorded as such
    ticket = tickets.create(erin, "checkout", "Card payments fail for EU customers", 1)
    row = breakglass.request(
        _as(ctx, "erin", at - timedelta(minutes=15)),
        "checkout",
        "prod",
        digest,
        "checkout-2026.11.2 carries the fix for EU card payments; every hour costs orders.",
        f"#{ticket.id}",
        request_ttl_minutes=24 * 60,
    )
    breakglass.approve(
        _as(ctx, "lena", at - timedelta(minutes=10)),
        row.id,
        service="checkout",
        stage="prod",
        digest=digest,
        comment="the diff is the EU card fix only",
    )
