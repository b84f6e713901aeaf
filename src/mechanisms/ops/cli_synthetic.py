"""`mech ops synthetic …`: the synthetic metrics generator (for demos and trials) on,
off, and what it writes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core.cli import JsonOpt, emit, operator, table
from mechanisms.ops import synthetic

app = typer.Typer(
    help="Synthetic latency and CPU metrics for demos and trials (off unless turned on).",
    no_args_is_help=True,
)


def _describe(config: synthetic.SyntheticConfig | None) -> dict[str, Any]:
    if config is None:
        return {"enabled": False}
    return {"enabled": True, **config.model_dump(mode="json")}


def _show(data: dict[str, Any]) -> None:
    if not data["enabled"]:
        typer.echo("the synthetic generator is off")
        return
    table(
        f"Synthetic metrics (seed {data['seed']})",
        ["service", "median latency ms", "CPU %", "requests/min"],
        [
            [p["service"], p["latency_ms"], p["cpu_percent"], p["requests_per_minute"]]
            for p in data["services"]
        ],
    )


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Whether the generator runs, and for which services."""
    with operator() as ctx:
        data = _describe(synthetic.configuration(ctx))
    emit(data, as_json, lambda: _show(data))


@app.command("on")
def turn_on(
    services: Annotated[list[str], typer.Argument(help="Service keys to generate for.")],
    latency_ms: Annotated[float, typer.Option(help="Median latency at average load.")] = 100.0,
    cpu_percent: Annotated[float, typer.Option(help="CPU utilisation at average load.")] = 50.0,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Generate for these services from the worker's next tick (two days of history first)."""
    raw = {
        "seed": seed,
        "services": [
            {"service": key, "latency_ms": latency_ms, "cpu_percent": cpu_percent}
            for key in services
        ],
    }
    with operator() as ctx:
        data = _describe(synthetic.enable(ctx, synthetic.parse_config(raw)))
    emit(data, as_json, lambda: _show(data))


@app.command("off")
def turn_off(as_json: JsonOpt = False) -> None:
    """Stop generating (what was written stays)."""
    with operator() as ctx:
        synthetic.disable(ctx)
    emit({"enabled": False}, as_json, lambda: typer.echo("the synthetic generator is off"))
