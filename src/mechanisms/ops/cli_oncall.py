"""`mech ops oncall …`: who is on call, schedules, overrides, swaps, escalation policies,
pages, coverage and fairness. ``--json`` prints what the API would answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from mechanisms.core import inputs
from mechanisms.core.cli import JsonOpt, emit, fail, operator, table
from mechanisms.ops import paging, schedules

app = typer.Typer(help="On-call schedules, escalation policies and pages.", no_args_is_help=True)
schedules_app = typer.Typer(help="On-call schedules.", no_args_is_help=True)
policies_app = typer.Typer(help="Escalation policies.", no_args_is_help=True)
pages_app = typer.Typer(help="Pages: list and acknowledge.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")
app.add_typer(policies_app, name="policies")
app.add_typer(pages_app, name="pages")


def _instant(field: str, value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{field}: not an ISO 8601 date-time ({value!r})")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text() if str(path) != "-" else typer.get_text_stream("stdin").read()
        data = inputs.parse_json(text)
    except (OSError, ValueError) as exc:
        fail(f"{path}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path}: expected a JSON object")
    return data


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _schedule_row(row: Any, now: datetime) -> dict[str, Any]:
    from mechanisms.ops import oncall

    return {
        "name": row.name,
        "team_id": row.team_id,
        "version": row.version,
        **row.definition,
        "on_call_now": oncall.who_is_on_call(schedules.model(row), now).person,
    }


@app.command("now")
def now(
    team: Annotated[str | None, typer.Option(help="Only this team's schedules.")] = None,
    schedule: Annotated[str | None, typer.Option(help="Only this schedule.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who is on call now, per schedule."""
    with operator() as ctx:
        rows = [
            {
                "schedule": n.schedule,
                "person": n.person,
                "source": n.source,
                "until": n.until.isoformat() if n.until else None,
            }
            for n in schedules.on_call_now(ctx, team=team, schedule=schedule)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "On call now",
            ["schedule", "person", "until"],
            [[r["schedule"], r["person"] or "nobody", r["until"] or "—"] for r in rows],
        ),
    )


@schedules_app.command("list")
def list_schedules(
    team: Annotated[str | None, typer.Option(help="Only this team's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List schedules and who is on call on each."""
    with operator() as ctx:
        rows = [_schedule_row(r, ctx.now) for r in schedules.list_schedules(ctx, team)]
    emit(
        rows,
        as_json,
        lambda: table(
            "Schedules",
            ["name", "time zone", "layers", "on call now"],
            [[r["name"], r["time_zone"], len(r["layers"]), r["on_call_now"]] for r in rows],
        ),
    )


@schedules_app.command("create")
def create_schedule(
    file: Annotated[
        Path, typer.Argument(help="JSON: {name, team, time_zone, layers, overrides?}; - for stdin.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule from a JSON definition."""
    data = _read_json(file)
    missing = [k for k in ("name", "team", "time_zone", "layers") if k not in data]
    if missing:
        fail(f"{file}: missing {', '.join(missing)}")
    with operator() as ctx:
        row = schedules.create_schedule(
            ctx,
            str(data["team"]),
            str(data["name"]),
            str(data["time_zone"]),
            data["layers"],
            data.get("overrides") or [],
        )
        out = _schedule_row(row, ctx.now)
    emit(out, as_json, lambda: typer.echo(f"created schedule {out['name']}"))


@schedules_app.command("show")
def show_schedule(
    name: str,
    days: Annotated[int, typer.Option(min=1, max=93, help="Shifts this many days ahead.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """A schedule and its shifts over the next days."""
    with operator() as ctx:
        row = schedules.get_schedule(ctx, name)
        out = _schedule_row(row, ctx.now)
        out["shifts"] = [
            {
                "person": s.person,
                "start": s.start.isoformat(),
                "end": s.end.isoformat(),
                "source": str(s.source),
            }
            for s in schedules.shifts_of(ctx, name, ctx.now, ctx.now + timedelta(days=days))
        ]

    def human() -> None:
        typer.echo(f"{out['name']} ({out['time_zone']}), version {out['version']}")
        typer.echo(f"on call now: {out['on_call_now'] or 'nobody'}")
        table(
            "Shifts (UTC)",
            ["person", "start", "end", "source"],
            [[s["person"], s["start"], s["end"], s["source"]] for s in out["shifts"]],
        )

    emit(out, as_json, human)


@app.command("shifts")
def person_shifts(
    person: str,
    days: Annotated[int, typer.Option(min=1, max=93, help="This many days ahead.")] = 28,
    as_json: JsonOpt = False,
) -> None:
    """A person's upcoming shifts on every schedule."""
    with operator() as ctx:
        rows = [
            {
                "schedule": p.schedule,
                "start": p.shift.start.isoformat(),
                "end": p.shift.end.isoformat(),
                "source": str(p.shift.source),
            }
            for p in schedules.person_shifts(ctx, person, ctx.now, ctx.now + timedelta(days=days))
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Shifts of {person} (UTC)",
            ["schedule", "start", "end"],
            [[r["schedule"], r["start"], r["end"]] for r in rows],
        ),
    )


@app.command("override")
def override(
    schedule: str,
    user: Annotated[str, typer.Option(help="Who takes the time.")],
    start: Annotated[str, typer.Option(help="ISO 8601 start (UTC if no offset).")],
    end: Annotated[str, typer.Option(help="ISO 8601 end.")],
    replaces: Annotated[
        str | None, typer.Option(help="Only this person's time in the window.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put someone on call over a window."""
    begin = _instant("start", start, datetime.now(UTC))
    finish = _instant("end", end, datetime.now(UTC))
    with operator() as ctx:
        row, override_id = schedules.add_override(ctx, schedule, begin, finish, user, replaces)
        out = {"schedule": row.name, "version": row.version, "override_id": override_id}
    emit(out, as_json, lambda: typer.echo(f"override {override_id} added to {schedule}"))


@app.command("swap")
def swap(
    schedule: str,
    first: Annotated[str, typer.Option(help="An instant inside the first shift.")],
    second: Annotated[str, typer.Option(help="An instant inside the second shift.")],
    as_json: JsonOpt = False,
) -> None:
    """The people on call at two instants exchange those shifts."""
    first_at = _instant("first", first, datetime.now(UTC))
    second_at = _instant("second", second, datetime.now(UTC))
    with operator() as ctx:
        row, ids = schedules.swap_shifts(ctx, schedule, first_at, second_at)
        out = {"schedule": row.name, "version": row.version, "override_ids": ids}
    emit(out, as_json, lambda: typer.echo(f"swapped: overrides {', '.join(ids)}"))


@app.command("coverage")
def coverage(
    schedule: Annotated[list[str], typer.Option(help="A schedule; repeat for several.")],
    start: Annotated[str | None, typer.Option(help="ISO 8601; default now.")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601; default start + 28 days.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Gaps (UTC) nobody on these schedules covers; exit 1 if there are any."""
    begin = _instant("start", start, datetime.now(UTC))
    finish = _instant("end", end, begin + timedelta(days=28))
    with operator() as ctx:
        gaps = schedules.coverage(ctx, schedule, begin, finish)
    rows = [
        {
            "start": g.start.isoformat(),
            "end": g.end.isoformat(),
            "hours": round(g.duration / timedelta(hours=1), 3),
        }
        for g in gaps
    ]
    emit(
        {"schedules": schedule, "covered": not rows, "gaps": rows},
        as_json,
        lambda: (
            table("Gaps (UTC)", ["start", "end", "hours"], [list(r.values()) for r in rows])
            if rows
            else typer.echo("fully covered")
        ),
    )
    if rows:
        raise typer.Exit(1)


@app.command("fairness")
def fairness(
    schedule: str,
    start: Annotated[str | None, typer.Option(help="ISO 8601; default end - 28 days.")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601; default now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hours, night hours and weekend hours per person."""
    finish = _instant("end", end, datetime.now(UTC))
    begin = _instant("start", start, finish - timedelta(days=28))
    with operator() as ctx:
        loads = schedules.fairness(ctx, schedule, begin, finish)
    rows = [
        {
            "person": load.person,
            "hours": round(load.hours, 3),
            "night_hours": round(load.night_hours, 3),
            "weekend_hours": round(load.weekend_hours, 3),
            "shifts": load.shifts,
        }
        for load in loads
    ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Fairness: {schedule}",
            ["person", "hours", "night", "weekend", "shifts"],
            [list(r.values()) for r in rows],
        ),
    )


@policies_app.command("list")
def list_policies(as_json: JsonOpt = False) -> None:
    """List escalation policies."""
    with operator() as ctx:
        rows = [
            {"name": p.name, "team_id": p.team_id, "version": p.version, **p.definition}
            for p in schedules.list_policies(ctx)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Escalation policies",
            ["name", "levels", "repeat"],
            [[r["name"], len(r["levels"]), r["repeat"]] for r in rows],
        ),
    )


@policies_app.command("create")
def create_policy(
    file: Annotated[Path, typer.Argument(help="JSON: {name, team, levels, repeat?}; - for stdin.")],
    default: Annotated[
        bool, typer.Option("--default", help="Page for the team's SEV1/SEV2 tickets.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an escalation policy from JSON."""
    data = _read_json(file)
    missing = [k for k in ("name", "team", "levels") if k not in data]
    if missing:
        fail(f"{file}: missing {', '.join(missing)}")
    repeat = data.get("repeat", 0)
    if not isinstance(repeat, int):
        fail(f"{file}: repeat must be a whole number")
    with operator() as ctx:
        row = schedules.create_policy(
            ctx, str(data["team"]), str(data["name"]), data["levels"], repeat, default=default
        )
        out = {"name": row.name, "team_id": row.team_id, "version": row.version, **row.definition}
    emit(out, as_json, lambda: typer.echo(f"created escalation policy {out['name']}"))


def _page_row(page: Any) -> dict[str, Any]:
    return {
        "id": page.id,
        "ticket_id": page.ticket_id,
        "policy": page.policy_name,
        "state": page.state,
        "created_at": page.created_at.isoformat(),
        "acknowledged_by": page.acknowledged_by,
        "next_escalation_at": page.next_escalation_at.isoformat()
        if page.next_escalation_at
        else None,
    }


@pages_app.command("list")
def list_pages(
    state: Annotated[
        str | None, typer.Option(help="triggered, acknowledged, resolved, exhausted or unrouted.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List pages, newest first."""
    with operator() as ctx:
        rows = [_page_row(p) for p in paging.list_pages(ctx, state)]
    emit(
        rows,
        as_json,
        lambda: table(
            "Pages",
            ["id", "ticket", "state", "policy", "next escalation"],
            [
                [r["id"], r["ticket_id"], r["state"], r["policy"], r["next_escalation_at"] or "—"]
                for r in rows
            ],
        ),
    )


@pages_app.command("ack")
def acknowledge_page(page_id: int, as_json: JsonOpt = False) -> None:
    """Acknowledge a page: its escalation stops."""
    with operator() as ctx:
        out = _page_row(paging.acknowledge(ctx, page_id))
    emit(out, as_json, lambda: typer.echo(f"page {page_id} acknowledged"))
