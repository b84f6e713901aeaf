"""`mech ops alerts …`: integration keys for PagerDuty-style senders (Events API v2)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core.cli import JsonOpt, emit, operator, table
from mechanisms.ops import alerts

app = typer.Typer(help="Alerts from existing tools: integration keys.", no_args_is_help=True)


def _row(key: Any, service: Any, secret: str | None = None) -> dict[str, Any]:
    row = {
        "service": service.key,
        "name": key.name,
        "hint": key.hint,
        "created_at": key.created_at.isoformat(),
        "rotated_at": key.rotated_at.isoformat() if key.rotated_at else None,
    }
    if secret is not None:
        row["routing_key"] = secret
    return row


def show_secret(
    row: dict[str, Any], verb: str, kind: str = "integration key", field: str = "routing_key"
) -> None:
    """A service key's secret, printed the one time anyone sees it."""
    typer.echo(f"{verb} {kind} {row['name']} of service {row['service']}")
    typer.echo(f"{field}: {row[field]}")
    typer.echo("It is shown this once; only its digest is kept.")


def key_table(title: str, rows: list[dict[str, Any]]) -> None:
    table(
        title,
        ["service", "name", "hint", "rotated"],
        [[r["service"], r["name"], r["hint"] + "…", r["rotated_at"] or ""] for r in rows],
    )


@app.command("create-key")
def create_key(
    service: str,
    name: Annotated[str, typer.Option(help="Which sender uses it, e.g. alertmanager.")],
    as_json: JsonOpt = False,
) -> None:
    """Create a routing key that sends events to SERVICE."""
    with operator() as ctx:
        row = _row(*alerts.create_integration_key(ctx, service, name))
    emit(row, as_json, lambda: show_secret(row, "created"))


@app.command("rotate-key")
def rotate_key(
    service: str,
    name: Annotated[str, typer.Option(help="The key's name.")],
    as_json: JsonOpt = False,
) -> None:
    """Give a key a new secret; the old one stops working at once."""
    with operator() as ctx:
        row = _row(*alerts.rotate_integration_key(ctx, service, name))
    emit(row, as_json, lambda: show_secret(row, "rotated"))


@app.command("keys")
def list_keys(
    service: Annotated[str | None, typer.Option(help="Only this service's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List integration keys (never their secrets)."""
    with operator() as ctx:
        rows = [_row(k, s) for k, s in alerts.list_integration_keys(ctx, service)]
    emit(rows, as_json, lambda: key_table("Integration keys", rows))
