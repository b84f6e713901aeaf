"""The on-call part of the demo organisation: payments follows the sun with a Berlin and
a New York schedule (the coverage report shows the hours between them), and a default
escalation policy pages their SEV1/SEV2 tickets."""

from __future__ import annotations

from datetime import timedelta

from mechanisms.core.context import Ctx
from mechanisms.demo import extend
from mechanisms.ops import schedules

OFFICE_HOURS = [{"kind": "daily", "start": "08:00", "end": "20:00"}]


def _weekly(participants: list[str], start: str) -> dict:
    return {
        "name": "office hours",
        "participants": participants,
        "rotation": {"type": "weekly", "handoff_weekday": "mon", "handoff_time": "09:00"},
        "start": start,
        "restrictions": OFFICE_HOURS,
    }


@extend
def seed_on_call(ctx: Ctx) -> None:
    since = (ctx.now - timedelta(days=28)).isoformat()
    schedules.create_schedule(
        ctx, "payments", "payments-emea", "Europe/Berlin", [_weekly(["erin", "lena"], since)]
    )
    schedules.create_schedule(
        ctx, "payments", "payments-amer", "America/New_York", [_weekly(["lena", "erin"], since)]
    )
    levels = [
        {
            "targets": [
                {"kind": "schedule", "name": "payments-emea"},
                {"kind": "schedule", "name": "payments-amer"},
            ],
            "timeout_minutes": 15,
        },
        {"targets": [{"kind": "user", "name": "lena"}], "timeout_minutes": 30},
    ]
    schedules.create_policy(ctx, "payments", "payments-default", levels, 1, default=True)
