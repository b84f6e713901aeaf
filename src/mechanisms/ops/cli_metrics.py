"""`mech ops metrics push|query`: samples in (JSON or Prometheus text, from a file or
stdin) and a statistic out, period by period."""

from __future__ import annotations

from typing import Annotated

import typer

from mechanisms.core.cli import JsonOpt, emit, fail, operator, table
from mechanisms.ops import alarms, metrics
from mechanisms.ops.cli_input import (
    parse_duration,
    parse_instant,
    parse_json,
    parse_labels,
    read_text,
)

app = typer.Typer(help="Push samples and query statistics.", no_args_is_help=True)
FORMATS = ("auto", "json", "prometheus")


def _is_json(source: str, text: str, chosen: str) -> bool:
    if chosen != "auto":
        return chosen == "json"
    return source.endswith(".json") or text.lstrip().startswith("{")


@app.command("push")
def push(
    source: Annotated[str, typer.Argument(help="A file, or - for stdin.")] = "-",
    format: Annotated[  # noqa: A002 (the option's name)
        str, typer.Option("--format", help="auto, json or prometheus.")
    ] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Push samples: JSON ({"samples": [...]}) or Prometheus text exposition format. A batch
    is stored whole or refused whole, with the problem named."""
    if format not in FORMATS:
        fail(f"--format is one of {', '.join(FORMATS)}, got {format!r}")
    text = read_text(source)
    with operator() as ctx:
        if _is_json(source, text, format):
            result = alarms.ingest_json(ctx, parse_json(text, source))
        else:
            result = alarms.ingest_prometheus(ctx, text)
        row = dict(result.__dict__)
    emit(
        row,
        as_json,
        lambda: typer.echo(
            f"accepted {row['accepted']} sample(s) into {row['buckets']} minute bucket(s); "
            f"{row['series_created']} new series, {row['duplicates']} duplicate(s) skipped"
        ),
    )


@app.command("query")
def query(
    name: str,
    statistic: Annotated[str, typer.Option(help="avg, sum, min, max, count or pNN.")] = "avg",
    match: Annotated[
        list[str] | None, typer.Option("--match", help="label=value; repeat for more.")
    ] = None,
    since: Annotated[str, typer.Option(help="How far back: 15m, 6h, 7d.")] = "1h",
    start: Annotated[str | None, typer.Option(help="ISO 8601; overrides --since.")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601; default now.")] = None,
    period: Annotated[int, typer.Option(help="Seconds per datapoint (a multiple of 60).")] = 60,
    as_json: JsonOpt = False,
) -> None:
    """One value of the statistic per period, merged over the matching series."""
    labels = parse_labels(match)
    if not metrics.NAME_RE.match(name):
        fail(f"{name!r} is not a Prometheus metric name")
    with operator() as ctx:
        until = parse_instant(end, "--end") if end else ctx.now
        begin = (
            parse_instant(start, "--start") if start else until - parse_duration(since, "--since")
        )
        points = alarms.query(ctx, name, labels, statistic, begin, until, period)
    rows = [{"at": at.isoformat(), "value": value} for at, value in points]
    emit(
        rows,
        as_json,
        lambda: table(
            f"{statistic} of {name}",
            ["period start (UTC)", statistic],
            [[r["at"], "—" if r["value"] is None else f"{r['value']:g}"] for r in rows],
        ),
    )
