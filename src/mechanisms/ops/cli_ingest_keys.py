"""`mech ops ingest-keys …`: per-service keys that write that service's metric samples and
nothing else (for exporters and SDKs that should hold no person's token)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core.cli import JsonOpt, emit, operator
from mechanisms.ops import ingest_keys
from mechanisms.ops.cli_alerts import key_table, show_secret

app = typer.Typer(help="Ingest keys: write one service's metrics.", no_args_is_help=True)

KIND = "ingest key"
NameOpt = Annotated[str, typer.Option("--name", help="Which sender uses it, e.g. web-exporter.")]


def _with_secret(key: Any, service: Any, secret: str) -> dict[str, Any]:
    return {**ingest_keys.describe(key, service), "key": secret}


@app.command("create")
def create(service: str, name: NameOpt, as_json: JsonOpt = False) -> None:
    """A key that writes SERVICE's samples (header X-Mech-Ingest-Key)."""
    with operator() as ctx:
        row = _with_secret(*ingest_keys.create(ctx, service, name))
    emit(row, as_json, lambda: show_secret(row, "created", KIND, "key"))


@app.command("rotate")
def rotate(service: str, name: NameOpt, as_json: JsonOpt = False) -> None:
    """Give a key a new secret; the old one stops working at once."""
    with operator() as ctx:
        row = _with_secret(*ingest_keys.rotate(ctx, service, name))
    emit(row, as_json, lambda: show_secret(row, "rotated", KIND, "key"))


@app.command("revoke")
def revoke(service: str, name: NameOpt) -> None:
    """Revoke a key: samples sent with it are refused from now on."""
    with operator() as ctx:
        ingest_keys.revoke(ctx, service, name)
    typer.echo(f"revoked {KIND} {name} of service {service}")


@app.command("list")
def list_keys(service: str, as_json: JsonOpt = False) -> None:
    """SERVICE's ingest keys (never their secrets)."""
    with operator() as ctx:
        rows = [ingest_keys.describe(k, s) for k, s in ingest_keys.list_keys(ctx, service)]
    emit(rows, as_json, lambda: key_table("Ingest keys", rows))
