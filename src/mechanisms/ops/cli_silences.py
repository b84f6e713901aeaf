"""`mech ops silences …`: scheduled silences from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core.cli import JsonOpt, emit, operator, table
from mechanisms.ops import silences

app = typer.Typer(
    help="Scheduled silences: alarms evaluate, but tickets and pages hold back.",
    no_args_is_help=True,
)


def _row(ctx: Any, row: silences.Silence) -> dict[str, Any]:
    window = silences.window_now(row, ctx.now)
    return {
        **silences.snapshot(row),
        "created_by": row.created_by,
        "active": window is not None,
        "window": [w.isoformat() for w in window] if window else None,
    }


def _show(rows: list[dict[str, Any]]) -> None:
    table(
        "Silences",
        ["name", "start", "end", "zone", "repeats", "alarms", "active"],
        [
            [
                r["name"],
                r["start"],
                r["end"],
                r["time_zone"],
                r["rrule"] or "",
                ", ".join(r["alarms"]) or "every alarm",
                "yes" if r["active"] else "",
            ]
            for r in rows
        ],
    )


@app.command("list")
def list_silences(as_json: JsonOpt = False) -> None:
    """List silences and whether each is in effect now."""
    with operator() as ctx:
        rows = [_row(ctx, s) for s in silences.list_silences(ctx)]
    emit(rows, as_json, lambda: _show(rows))


@app.command("set")
def set_silence(
    name: str,
    start: Annotated[str, typer.Option(help="Wall-clock start, ISO 8601, in --zone.")],
    end: Annotated[str, typer.Option(help="Wall-clock end, after the start.")],
    zone: Annotated[str, typer.Option(help="IANA time zone of start and end.")] = "UTC",
    rrule: Annotated[
        str | None, typer.Option(help="Repeat the window, e.g. FREQ=WEEKLY;BYDAY=SA.")
    ] = None,
    alarm: Annotated[
        list[str] | None, typer.Option(help="An alarm to silence; repeat. None: every alarm.")
    ] = None,
    comment: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a silence, or replace the one with this name."""
    schedule = silences.Schedule(start, end, zone, rrule, tuple(alarm or ()))
    with operator() as ctx:
        exists = any(s.name == name for s in silences.list_silences(ctx))
        save = silences.replace if exists else silences.create
        row = _row(ctx, save(ctx, name, schedule, comment))
    emit(row, as_json, lambda: _show([row]))


@app.command("delete")
def delete_silence(name: str) -> None:
    """Delete a silence."""
    with operator() as ctx:
        silences.delete(ctx, name)
    typer.echo(f"deleted silence {name}")
