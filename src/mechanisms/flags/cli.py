"""`mech flags …`: applications, flags, configurations, deployments, experiments.

Commands act on the database as the local operator. A configuration is JSON (a file,
or `-` for standard input) in the shape the API takes; see `mech flags show` for the
live one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mechanisms.core import inputs
from mechanisms.core.cli import JsonOpt, console, emit, fail, operator, table
from mechanisms.flags import deployments as flag_deployments  # `deployments` is a command here
from mechanisms.flags import experiments, service
from mechanisms.flags.domain import Engine

app = typer.Typer(
    help="Feature flags: access controls, treatment groups, gradual rollout.", no_args_is_help=True
)
experiment_app = typer.Typer(help="Experiments on a flag's variants.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


def _read_json(source: str, what: str) -> Any:
    """JSON from a file path, `-` (standard input) or an inline JSON text."""
    try:
        if source == "-":
            text = sys.stdin.read()
        elif source.lstrip().startswith(("{", "[")):
            text = source
        else:
            text = Path(source).read_text(encoding="utf-8")
        return inputs.parse_json(text)
    except OSError as exc:
        fail(f"cannot read {what} from {source}: {exc.strerror}")
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc}")


def _deployment_row(dep: Any) -> dict[str, Any]:
    return {**flag_deployments.deployment_snapshot(dep), "started_at": dep.started_at.isoformat()}


@app.command("apps")
def list_apps(as_json: JsonOpt = False) -> None:
    """List applications and their environments."""
    with operator() as ctx:
        rows = [
            {
                **service.app_snapshot(a),
                "environments": [e.key for e in service.environments(ctx.session, a)],
            }
            for a in service.list_apps(ctx)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Applications",
            ["key", "name", "environments"],
            [[r["key"], r["name"], ", ".join(r["environments"])] for r in rows],
        ),
    )


@app.command("create-app")
def create_app(
    key: str,
    owner: Annotated[str, typer.Option(help="Owning team (slug).")],
    name: Annotated[str, typer.Option()] = "",
    environment: Annotated[
        list[str] | None,
        typer.Option(help="KEY or KEY:approval; repeat. Default: beta, gamma, prod (approval)."),
    ] = None,
) -> None:
    """Create an application with its environments."""
    envs = None
    if environment:
        envs = [(e.split(":")[0], e.split(":")[0], e.endswith(":approval")) for e in environment]
    with operator() as ctx:
        created = service.create_app(ctx, key, name, owner, envs)
        keys = [e.key for e in service.environments(ctx.session, created)]
    console.print(f"created application [bold]{key}[/] with {', '.join(keys)}")


@app.command("list")
def list_flags(
    application: str,
    stale: Annotated[bool, typer.Option("--stale", help="Only stale flags.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Each flag's state per environment."""
    with operator() as ctx:
        rows = [
            {
                "flag": s.flag.key,
                "kind": s.flag.kind,
                "environment": s.environment,
                "version": s.live_number,
                "enabled": s.enabled,
                "serves": s.single_value or "several",
                "stale": s.stale,
                "deployment": f"{s.deployment.state} {s.deployment.percent:g}%"
                if s.deployment
                else None,
            }
            for s in service.statuses(ctx, application)
            if s.stale or not stale
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Flags of {application}",
            list(rows[0]) if rows else ["flag"],
            [list(r.values()) for r in rows],
        ),
    )


@app.command("create")
def create_flag(
    application: str,
    key: str,
    flag_type: Annotated[
        str, typer.Option("--type", help="boolean, string, number or object.")
    ] = "boolean",
    kind: Annotated[
        str, typer.Option(help="release, experiment, operational, permission or kill_switch.")
    ] = "release",
    variants: Annotated[
        str | None, typer.Option(help="JSON object of variant name → value (file, - or inline).")
    ] = None,
    off_variant: Annotated[str | None, typer.Option()] = None,
    schema: Annotated[
        str | None, typer.Option(help="JSON Schema for object flags (file, - or inline).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option(help="Owning team; default: the application's.")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    stale_after_days: Annotated[int, typer.Option(min=1, max=3650)] = 30,
) -> None:
    """Create a flag; it starts serving its off variant in every environment."""
    with operator() as ctx:
        service.create_flag(
            ctx,
            application,
            key,
            flag_type=flag_type,
            kind=kind,
            description=description,
            owner_team=owner,
            variants=_read_json(variants, "variants") if variants else None,
            off_variant=off_variant,
            json_schema=_read_json(schema, "schema") if schema else None,
            stale_after_days=stale_after_days,
        )
    console.print(f"created flag [bold]{key}[/] in {application}")


@app.command("show")
def show(application: str, flag: str, environment: str, as_json: JsonOpt = False) -> None:
    """The live configuration of a flag in an environment."""
    with operator() as ctx:
        status = next(
            (
                s
                for s in service.statuses(ctx, application)
                if s.flag.key == flag and s.environment == environment
            ),
            None,
        )
        if status is None:
            fail(f"no flag {flag!r} in {application}/{environment}")
        current = next(
            v
            for v in service.versions(ctx, application, flag, environment)
            if v.number == status.live_number
        )
        data = {
            "number": current.number,
            "author": current.author,
            "comment": current.comment,
            "config": current.config,
        }
    emit(data, as_json, lambda: console.print_json(json.dumps(data)))


@app.command("set")
def set_config(
    application: str,
    flag: str,
    environment: str,
    config: Annotated[str, typer.Option(help="The configuration JSON (file, - or inline).")],
    strategy: Annotated[str, typer.Option(help="Deployment strategy.")] = "AllAtOnce",
    alarm: Annotated[
        list[str] | None, typer.Option(help="Roll back when this alarm fires; repeat.")
    ] = None,
    guardrails: Annotated[
        bool,
        typer.Option("--guardrails", help="Roll back when an experiment guardrail is crossed."),
    ] = False,
    comment: Annotated[str, typer.Option()] = "",
    base: Annotated[
        int | None, typer.Option(help="Refuse if the latest version is not this one.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose a configuration: a new version deployed with the strategy, or a change request
    where the environment needs approval."""
    raw = _read_json(config, "config")
    with operator() as ctx:
        change = service.set_config(
            ctx,
            application,
            flag,
            environment,
            raw,
            comment=comment,
            base_number=base,
            strategy=strategy,
            monitors={"alarms": alarm or [], "guardrails": guardrails},
        )
        data = {
            "version": change.version.number if change.version else None,
            "deployment": _deployment_row(change.deployment) if change.deployment else None,
            "change_request": change.change_request.id if change.change_request else None,
        }
    if data["change_request"]:
        human = f"change request {data['change_request']} waits for another person's approval"
    else:
        human = f"version {data['version']} deploying ({data['deployment']['strategy']}, now {data['deployment']['percent']:g}%)"
    emit(data, as_json, lambda: console.print(human))


@app.command("versions")
def versions(application: str, flag: str, environment: str, as_json: JsonOpt = False) -> None:
    """The versions of a flag in an environment, newest first."""
    with operator() as ctx:
        rows = [
            {
                "number": v.number,
                "author": v.author,
                "comment": v.comment,
                "created_at": v.created_at.isoformat(),
            }
            for v in service.versions(ctx, application, flag, environment)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"{flag} in {environment}",
            ["number", "author", "comment", "created_at"],
            [list(r.values()) for r in rows],
        ),
    )


@app.command("restore")
def restore(
    application: str, flag: str, environment: str, number: int, strategy: str = "AllAtOnce"
) -> None:
    """Bring back an older version as a new version."""
    with operator() as ctx:
        change = service.restore(ctx, application, flag, environment, number, strategy)
        note = (
            f"version {change.version.number}"
            if change.version
            else f"change request {change.change_request.id}"
        )
    console.print(f"restored version {number} as {note}")


@app.command("deployments")
def deployments(
    application: str,
    flag: str,
    environment: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployments of a flag, newest first."""
    with operator() as ctx:
        rows = [
            _deployment_row(d)
            for d in flag_deployments.deployments(ctx, application, flag, environment)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            f"Deployments of {flag}",
            list(rows[0]) if rows else ["id"],
            [list(r.values()) for r in rows],
        ),
    )


@app.command("rollback")
def rollback(
    deployment: int, reason: Annotated[str, typer.Option(help="Why; recorded in the audit trail.")]
) -> None:
    """Roll a running deployment back: everyone returns to the previous version."""
    with operator() as ctx:
        flag_deployments.rollback(ctx, deployment, reason)
    console.print(f"deployment {deployment} rolled back")


@app.command("kill")
def kill(
    application: str,
    flag: str,
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit trail.")],
) -> None:
    """Kill switch: turn the flag off in every environment at once."""
    with operator() as ctx:
        created = flag_deployments.kill(ctx, application, flag, reason)
    console.print(f"[bold red]{flag} is off everywhere[/] ({len(created)} new version(s))")


@app.command("eval")
def evaluate(
    application: str,
    environment: str,
    flag: str,
    context: Annotated[
        str, typer.Option(help="Evaluation context JSON (file, - or inline).")
    ] = "{}",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a flag for a context the way an SDK would, with the reason."""
    ctx_data = _read_json(context, "context")
    if not isinstance(ctx_data, dict):
        fail("the context must be a JSON object")
    with operator() as ctx:
        found = service.get_app(ctx, application)
        ruleset = service.ruleset(
            ctx.session, found, service.get_environment(ctx, found, environment)
        )
    result = Engine(ruleset).evaluate(flag, ctx_data)
    data = {
        "value": result.value,
        "variant": result.variant,
        "reason": result.reason,
        "rule": result.rule_id,
        "error": result.error_code,
        "message": result.error_message,
    }
    emit(data, as_json, lambda: console.print_json(json.dumps(data)))
    if result.is_error:
        raise typer.Exit(1)


@app.command("segment")
def set_segment(
    application: str,
    key: str,
    definition: Annotated[str, typer.Option(help="JSON (file, - or inline).")],
    description: Annotated[str | None, typer.Option(help="Omit to keep the current one.")] = None,
) -> None:
    """Create or replace a segment: {"included": [...], "excluded": [...], "rules": [[clause, ...], ...]}."""
    raw = _read_json(definition, "definition")
    with operator() as ctx:
        service.set_segment(ctx, application, key, raw, description)
    console.print(f"segment [bold]{key}[/] saved")


@experiment_app.command("start")
def experiment_start(
    application: str,
    flag: str,
    environment: str,
    control: Annotated[str, typer.Option(help="The control variant.")],
    metrics: Annotated[
        str, typer.Option(help='JSON list: [{"name": "purchase", "kind": "conversion"}, ...]')
    ],
    hypothesis: str = "",
) -> None:
    """Run a flag's split as an experiment."""
    raw = _read_json(metrics, "metrics")
    with operator() as ctx:
        experiment = experiments.start(
            ctx, application, flag, environment, control=control, metrics=raw, hypothesis=hypothesis
        )
        number = experiment.id
    console.print(f"experiment {number} running")


@experiment_app.command("results")
def experiment_results(experiment: int, as_json: JsonOpt = False) -> None:
    """Per-variant results with confidence intervals and the chance to beat control."""
    from mechanisms.flags.api import _dataclass_json

    with operator() as ctx:
        found = experiments.results(ctx, experiment)
    data = {
        "exposures": found.exposures,
        "sample_ratio_mismatch": found.sample_ratio.mismatch if found.sample_ratio else None,
        "metrics": {
            m.metric["name"]: _dataclass_json(m.analysis) if m.analysis else m.not_enough_data
            for m in found.metrics
        },
    }

    def human() -> None:
        console.print(f"exposures: {found.exposures}")
        for m in found.metrics:
            if m.analysis is None:
                console.print(f"{m.metric['name']}: not enough data ({m.not_enough_data})")
                continue
            rows = []
            for variant, t in m.analysis.treatments.items():
                if t.comparison is None:
                    rows.append([variant, "not enough data", "", "", ""])
                    continue
                rows.append(
                    [
                        variant,
                        f"{t.comparison.difference:+.4g}",
                        f"[{t.comparison.ci_low:.4g}, {t.comparison.ci_high:.4g}]",
                        f"{t.comparison.p_value:.3g}",
                        f"{t.bayesian.chance_to_beat_control:.1%}",
                    ]
                )
            table(
                m.metric["name"],
                ["variant", "difference", "interval", "p-value", "chance to beat control"],
                rows,
            )

    emit(data, as_json, human)


@experiment_app.command("decide")
def experiment_decide(
    experiment: int,
    decision: Annotated[str, typer.Argument(help="ship or rollback")],
    reason: Annotated[str, typer.Option()],
    variant: Annotated[str | None, typer.Option(help="The variant to ship.")] = None,
    strategy: str = "Linear20PercentEvery6Minutes",
) -> None:
    """Ship the winner through a gradual rollout, or roll back to the control."""
    with operator() as ctx:
        experiments.decide(ctx, experiment, decision, reason, variant=variant, strategy=strategy)
    console.print(f"experiment {experiment}: {decision}")
