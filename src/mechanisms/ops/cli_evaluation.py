"""`mech ops set-alarm-state`: drill what acts on an alarm by setting its state by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from mechanisms.core.cli import JsonOpt, emit, operator
from mechanisms.ops import alarms


def set_alarm_state(
    name: str,
    state: Annotated[str, typer.Argument(help="OK, ALARM or INSUFFICIENT_DATA")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the transition).")],
    as_json: JsonOpt = False,
) -> None:
    """Set an alarm's state until its next evaluation: rollouts watching it roll back on
    ALARM and its ticket is cut, as if it had fired."""
    with operator() as ctx:
        alarm = alarms.set_state(ctx, name, state.upper(), reason)
        row = {"name": alarm.name, "state": alarm.state, "reason": alarm.state_reason}
    emit(row, as_json, lambda: typer.echo(f"alarm {row['name']} is {row['state']}"))
