"""The ops web UI: the overview of services with their alarms and open tickets.

Server-rendered with Jinja2 and htmx; pictures are inline SVG drawn here. Pages call the
ops service modules only, so authorisation stays there. Templates live in
``ops/templates`` and are found as ``ops/<name>.html``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mechanisms.core import accounts
from mechanisms.ops import alarms, tickets
from mechanisms.web import pages as web
from mechanisms.web.http import UnitOfWorkRoute
from mechanisms.web.pages import PageCtx

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
web.register_templates("ops", TEMPLATES_DIR)

STATES = ("ALARM", "INSUFFICIENT_DATA", "OK")
SEVERITIES = {1: "SEV1", 2: "SEV2", 3: "SEV3", 4: "SEV4", 5: "SEV5"}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


H = SimpleNamespace(when=_when, sev=lambda n: SEVERITIES.get(n, f"SEV{n}"), states=STATES)


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> Response:
    return web.render(
        request, f"ops/{template}", status_code=status_code, section="ops", h=H, **values
    )


@router.get("/ops")
def overview(request: Request, ctx: PageCtx) -> Response:
    services = alarms.list_services(ctx)
    teams = {t.id: t for t in accounts.list_teams(ctx)}
    states: dict[int, Counter[str]] = {s.id: Counter() for s in services}
    for alarm in alarms.list_alarms(ctx):
        states[alarm.service_id][alarm.state] += 1
    open_tickets = [t for t in tickets.list_tickets(ctx, limit=500) if t.state != "resolved"]
    by_service = Counter(t.service_id for t in open_tickets)
    rows = [
        {
            "service": s,
            "team": teams.get(s.owner_team_id),
            "states": states[s.id],
            "open_tickets": by_service[s.id],
        }
        for s in services
    ]
    return render(request, "overview.html", rows=rows, open_tickets=open_tickets[:20])


# Each area's pages live in a module of its own; they share ``render`` and ``done`` above.
from mechanisms.ops import (  # noqa: E402
    pages_alarms,
    pages_oncall,
    pages_oncall_edit,
    pages_scaling,
    pages_silences,
    pages_tickets,
)

for area in (
    pages_alarms,
    pages_tickets,
    pages_silences,
    pages_oncall,
    pages_oncall_edit,
    pages_scaling,
):
    router.include_router(area.router)
