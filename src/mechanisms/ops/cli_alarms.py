"""`mech ops alarms list|show|create|history|set-state`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from mechanisms.core.cli import JsonOpt, emit, fail, operator, table
from mechanisms.core.context import Ctx
from mechanisms.ops import alarm_rules, alarm_view, alarms
from mechanisms.ops.api import AlarmIn
from mechanisms.ops.cli_input import read_json

STATES = tuple(s.value for s in alarm_rules.AlarmState)
app = typer.Typer(help="Alarms: list, show, create, history, set state.", no_args_is_help=True)


def alarm_row(ctx: Ctx, alarm: Any) -> dict[str, Any]:
    service = next((s.key for s in alarms.list_services(ctx) if s.id == alarm.service_id), None)
    return {
        **alarms.alarm_snapshot(alarm),
        "service": service,
        "description": alarm.description,
        "state_reason": alarm.state_reason,
        "state_changed_at": alarm.state_changed_at.isoformat(),
        "evaluated_at": alarm.evaluated_at.isoformat() if alarm.evaluated_at else None,
        "in_words": alarm_view.describe(alarm.kind, alarm.metric, alarm.match, alarm.definition),
    }


def _check_state(state: str | None, option: str) -> None:
    if state is not None and state not in STATES:
        fail(f"{option} is one of {', '.join(STATES)}, got {state!r}")


@app.command("list")
def list_alarms(
    state: Annotated[str | None, typer.Option(help="ALARM, INSUFFICIENT_DATA or OK.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service's alarms.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Alarms, with their state and what they watch."""
    _check_state(state, "--state")
    with operator() as ctx:
        service_id = alarms.get_service(ctx, service).id if service else None
        rows = [
            alarm_row(ctx, a)
            for a in alarms.list_alarms(ctx, state)
            if service_id is None or a.service_id == service_id
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Alarms",
            ["name", "state", "since (UTC)", "severity", "service", "watches"],
            [
                [
                    r["name"],
                    r["state"],
                    r["state_changed_at"][:16],
                    f"SEV{r['severity']}",
                    r["service"],
                    r["in_words"],
                ]
                for r in rows
            ],
        ),
    )


@app.command("show")
def show(name: str, as_json: JsonOpt = False) -> None:
    """One alarm: its definition in words, its state and why; a composite's children."""
    with operator() as ctx:
        row = alarm_row(ctx, alarms.get_alarm(ctx, name))
        if row["kind"] == "composite":
            states = {a.name: a.state for a in alarms.list_alarms(ctx)}
            children = sorted(alarm_rules.parse_rule(row["definition"]["rule"]).alarms)
            row["children"] = {child: states.get(child) for child in children}

    def human() -> None:
        typer.echo(f"{row['name']}: {row['state']} since {row['state_changed_at']}")
        typer.echo(f"  {row['in_words']}")
        typer.echo(f"  SEV{row['severity']} · service {row['service']}")
        typer.echo(f"  {row['state_reason']}")
        for child, state in row.get("children", {}).items():
            typer.echo(f"  {child}: {state or 'unknown'}")

    emit(row, as_json, human)


@app.command("create")
def create(
    source: Annotated[str, typer.Argument(help="A JSON file, or - for stdin.")] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Create an alarm from JSON, as POST /api/v1/ops/alarms takes it: {"name", "service",
    "metric", "match", "definition": {...}} or {"name", "service", "rule"}."""
    raw = read_json(source)
    try:
        body = AlarmIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the definition"
        fail(f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}")
    with operator() as ctx:
        fields = body.model_dump(exclude={"name", "service"})
        alarm = alarms.create_alarm(ctx, body.name, body.service, **fields)
        row = alarm_row(ctx, alarm)
    emit(row, as_json, lambda: typer.echo(f"created alarm {row['name']}: {row['in_words']}"))


@app.command("history")
def history(
    name: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """State changes, newest first, with the datapoints that decided each."""
    with operator() as ctx:
        rows = [
            {
                "at": t.at.isoformat(),
                "from_state": t.from_state,
                "to_state": t.to_state,
                "reason": t.reason,
                "datapoints": t.datapoints,
            }
            for t in alarms.history(ctx, name, limit)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"History of {name}",
            ["at (UTC)", "change", "reason"],
            [[r["at"][:19], f"{r['from_state']} → {r['to_state']}", r["reason"]] for r in rows],
        ),
    )


@app.command("set-state")
def set_state(
    name: str,
    state: Annotated[str, typer.Argument(help="ALARM, INSUFFICIENT_DATA or OK.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the history).")],
    as_json: JsonOpt = False,
) -> None:
    """Set an alarm's state by hand, to try what acts on it; the next evaluation decides
    again."""
    _check_state(state, "STATE")
    with operator() as ctx:
        row = alarm_row(ctx, alarms.set_state(ctx, name, state, reason))
    emit(row, as_json, lambda: typer.echo(f"{row['name']} is {row['state']}"))
