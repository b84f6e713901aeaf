"""`mech ops …`: services, metrics, alarms, tickets, on-call, scaling.

Commands act on the database as the local operator; `--json` prints what the API
would answer."""

from __future__ import annotations

from typing import Annotated

import typer

from mechanisms.core.cli import JsonOpt, emit, operator, table
from mechanisms.ops import alarms
from mechanisms.ops.cli_alerts import app as alerts_cli

app = typer.Typer(
    help="Ops: detective metrics, alarms that act, tickets, on-call.", no_args_is_help=True
)


@app.command("services")
def list_services(as_json: JsonOpt = False) -> None:
    """List services and their owning teams."""
    with operator() as ctx:
        rows = [
            {"key": s.key, "name": s.name, "owner_team_id": s.owner_team_id}
            for s in alarms.list_services(ctx)
        ]
    emit(
        rows,
        as_json,
        lambda: table("Services", ["key", "name"], [[r["key"], r["name"]] for r in rows]),
    )


@app.command("create-service")
def create_service(
    key: str,
    owner: Annotated[str, typer.Option(help="Owning team (slug).")],
    name: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a service owned by a team."""
    with operator() as ctx:
        service = alarms.create_service(ctx, key, name or key, owner)
        row = {"key": service.key, "name": service.name, "owner_team_id": service.owner_team_id}
    emit(row, as_json, lambda: typer.echo(f"created service {row['key']}"))


# Each area's commands live in a module of its own.
from mechanisms.ops import (  # noqa: E402
    cli_alarms,
    cli_ingest_keys,
    cli_metrics,
    cli_oncall,
    cli_scaling,
    cli_silences,
    cli_synthetic,
    cli_tickets,
)

app.add_typer(cli_metrics.app, name="metrics")
app.add_typer(cli_ingest_keys.app, name="ingest-keys")
app.add_typer(cli_alarms.app, name="alarms")
app.add_typer(cli_silences.app, name="silences")
app.add_typer(cli_tickets.app, name="tickets")
app.add_typer(cli_oncall.app, name="oncall")
app.add_typer(cli_scaling.app, name="scaling")
app.command("costs")(cli_scaling.costs)
app.add_typer(alerts_cli, name="alerts")
app.add_typer(cli_synthetic.app, name="synthetic")
