"""`mech ops scaling …` (scalable targets, policies, capacity history) and
`mech ops costs` (cost-saving findings)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core import inputs
from mechanisms.core.cli import JsonOpt, emit, fail, operator, table
from mechanisms.ops import autoscaling, cost

app = typer.Typer(
    help="Autoscaling: targets, target-tracking policies, history.", no_args_is_help=True
)


def _json_action(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        action = inputs.parse_json(raw)
    except ValueError:
        fail('--action takes JSON, e.g. {"kind": "command", "argv": ["/usr/local/bin/scale"]}')
    return action


def _decision(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "at": d.at.isoformat(),
        "from_capacity": d.from_capacity,
        "to_capacity": d.to_capacity,
        "formula_capacity": d.formula_capacity,
        "metric_value": d.metric_value,
        "reason": d.reason,
        "trigger": d.trigger,
        "actor": d.actor,
        "action_kind": d.action_kind,
        "action_status": d.action_status,
        "action_exit_code": d.action_exit_code,
    }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


@app.command("targets")
def list_targets(as_json: JsonOpt = False) -> None:
    """List scalable targets with their capacities."""
    with operator() as ctx:
        rows = [_plain(autoscaling.describe_target(ctx, t)) for t in autoscaling.list_targets(ctx)]
    emit(
        rows,
        as_json,
        lambda: table(
            "Scalable targets",
            ["key", "service", "desired", "current", "min", "max", "action"],
            [
                [
                    r["key"],
                    r["service"],
                    r["desired_capacity"],
                    r["current_capacity"],
                    r["min_capacity"],
                    r["max_capacity"],
                    r["action"]["kind"],
                ]
                for r in rows
            ],
        ),
    )


@app.command("create-target")
def create_target(
    key: str,
    service: Annotated[str, typer.Option(help="The ops service it belongs to.")],
    min_capacity: Annotated[int, typer.Option("--min")],
    max_capacity: Annotated[int, typer.Option("--max")],
    desired: Annotated[int | None, typer.Option(help="Starting capacity (default: --min).")] = None,
    unit_cost: Annotated[float, typer.Option(help="Cost of one unit for one hour.")] = 0.0,
    action: Annotated[str | None, typer.Option(help="The action as JSON.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a scalable target."""
    with operator() as ctx:
        target = autoscaling.create_target(
            ctx,
            key,
            service,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            desired_capacity=desired,
            unit_cost_per_hour=unit_cost,
            action=_json_action(action),
        )
        row = _plain(autoscaling.describe_target(ctx, target))
    emit(row, as_json, lambda: typer.echo(f"created scalable target {row['key']}"))


@app.command("create-policy")
def create_policy(
    name: str,
    target: Annotated[str, typer.Option(help="The scalable target's key.")],
    metric: Annotated[str, typer.Option()],
    target_value: Annotated[float, typer.Option(help="The value to keep the metric near.")],
    match: Annotated[list[str] | None, typer.Option(help="label=value; repeat.")] = None,
    statistic: Annotated[str, typer.Option()] = "avg",
    period: Annotated[int, typer.Option(help="Seconds, a multiple of 60.")] = 60,
    tolerance: Annotated[float, typer.Option()] = 0.1,
    scale_out_cooldown: Annotated[int, typer.Option()] = 300,
    scale_in_cooldown: Annotated[int, typer.Option()] = 300,
    disable_scale_in: Annotated[bool, typer.Option()] = False,
    alarm: Annotated[str | None, typer.Option(help="An alarm that evaluates it at once.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a target-tracking policy."""
    labels = {}
    for item in match or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail("--match takes label=value")
        labels[key] = value
    with operator() as ctx:
        policy = autoscaling.create_policy(
            ctx,
            name,
            target,
            metric=metric,
            match=labels,
            statistic=statistic,
            period_seconds=period,
            target_value=target_value,
            tolerance=tolerance,
            scale_out_cooldown_seconds=scale_out_cooldown,
            scale_in_cooldown_seconds=scale_in_cooldown,
            disable_scale_in=disable_scale_in,
            alarm=alarm,
        )
        row = _plain(autoscaling.describe_policy(ctx, policy))
    emit(row, as_json, lambda: typer.echo(f"created scaling policy {row['name']}"))


@app.command("policies")
def list_policies(
    target: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """List scaling policies."""
    with operator() as ctx:
        rows = [
            _plain(autoscaling.describe_policy(ctx, p))
            for p in autoscaling.list_policies(ctx, target)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Scaling policies",
            ["name", "target", "metric", "statistic", "target value", "enabled"],
            [
                [
                    r["name"],
                    r["target"],
                    r["metric"],
                    r["statistic"],
                    r["target_value"],
                    r["enabled"],
                ]
                for r in rows
            ],
        ),
    )


@app.command("history")
def history(
    target: str,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """A target's capacity history, newest first."""
    with operator() as ctx:
        rows = [_decision(d) for d in autoscaling.history(ctx, target, limit=limit)]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Capacity history of {target}",
            ["at", "from", "to", "metric", "trigger", "action"],
            [
                [
                    r["at"][:16],
                    r["from_capacity"],
                    r["to_capacity"],
                    "—" if r["metric_value"] is None else f"{r['metric_value']:.3g}",
                    r["trigger"],
                    r["action_status"],
                ]
                for r in rows
            ],
        ),
    )


@app.command("evaluate")
def evaluate(policy: str, as_json: JsonOpt = False) -> None:
    """Evaluate a policy now and record the decision."""
    with operator() as ctx:
        row = _decision(autoscaling.evaluate_now(ctx, policy))
    emit(row, as_json, lambda: typer.echo(row["reason"]))


def costs(
    days: Annotated[int, typer.Option(help="The period to look back over.")] = cost.DEFAULT_DAYS,
    threshold: Annotated[
        float | None, typer.Option(help="p95 utilisation below this (default: half the target).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cost-saving findings: targets whose p95 utilisation stayed low."""
    with operator() as ctx:
        rows = [f.as_json() for f in cost.findings(ctx, days, threshold)]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Cost-saving findings over {days} days",
            ["target", "p95", "threshold", "avg capacity", "would suffice", "saving", "per month"],
            [
                [
                    r["target"],
                    f"{r['p95_utilisation']:.3g}",
                    f"{r['threshold']:.3g}",
                    f"{r['average_capacity']:.2f}",
                    r["sufficient_capacity"],
                    f"{r['saving']:.2f}",
                    f"{r['monthly_saving']:.2f}",
                ]
                for r in rows
            ],
        ),
    )
