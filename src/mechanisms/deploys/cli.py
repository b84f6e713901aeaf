"""`mech deploy …`: the gate for any CI system, test uploads, promotions, block windows and
break-glass from the command line.

Exit codes: 0 done (the gate is open, the promotion went through), 1 the gate is blocked,
2 a usage or input error. ``--json`` everywhere.

Commands act as the local operator, who never counts as a person for break-glass or
stage approvals. With ``MECH_TOKEN`` set (or ``--token``) they act as that API token's
user instead, checked against the database as the API checks it: that is how a person
requests or approves break-glass from a terminal."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mechanisms.core import inputs
from mechanisms.core.cli import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TokenOpt,
    acting,
    console,
    emit,
    fail,
    table,
)
from mechanisms.deploys import breakglass, pipelines, windows

app = typer.Typer(
    help="Deploys: pipelines gated by tests, block windows and break-glass.",
    no_args_is_help=True,
)
pipeline_app = typer.Typer(help="A service's pipeline of stages.", no_args_is_help=True)
versions_app = typer.Typer(help="Versions (artifact id + digest).", no_args_is_help=True)
tests_app = typer.Typer(help="Integration test results (JUnit XML).", no_args_is_help=True)
windows_app = typer.Typer(help="Block windows and freezes.", no_args_is_help=True)
breakglass_app = typer.Typer(
    help="Break-glass under the two-person rule (people act with MECH_TOKEN).",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(versions_app, name="versions")
app.add_typer(tests_app, name="tests")
app.add_typer(windows_app, name="windows")
app.add_typer(breakglass_app, name="breakglass")

ServiceOpt = Annotated[str, typer.Option("--service", help="The service's key.")]
StageOpt = Annotated[str, typer.Option("--stage", help="The stage, e.g. prod.")]
VersionOpt = Annotated[str, typer.Option("--version", help="A digest or artifact id.")]


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{field}: {value!r} is not an ISO 8601 date-time")
    if parsed.tzinfo is None:
        fail(f"--{field}: give a time zone offset, e.g. {value}Z or {value}+01:00")
    return parsed


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _print_decision(decision: dict[str, Any]) -> None:
    where = f"{decision['service']}/{decision['stage']} {decision['digest']}"
    window = decision["window"]
    if decision["allowed"]:
        console.print(f"[bold green]OPEN[/] {where} may be promoted now")
        if window["next_transition"]:
            console.print(f"  the next block window starts at {window['next_transition']}")
        return
    console.print(f"[bold red]BLOCKED[/] {where}")
    for blocker in decision["blockers"]:
        console.print(f"  - [{blocker['code']}] {blocker['message']}")
        console.print(f"    to clear: {blocker['clear']}")
    if window["state"] == "BLOCKED":
        opens = window["next_transition"] or "not within the calendar's horizon"
        console.print(f"  block windows lift at {opens}")


# --- the gate and promotions -----------------------------------------------------------


@app.command("gate")
def gate(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    at: Annotated[str | None, typer.Option(help="ISO 8601 instant; default now.")] = None,
    drill: Annotated[bool, typer.Option(help="Ask as a break-glass drill would.")] = False,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """May this version go into this stage now? Exit 0 yes, 1 blocked (each blocker and how
    to clear it is printed), 2 usage error."""
    when = _instant(at, "at")
    with acting(token) as ctx:
        decision = pipelines.gate(ctx, service, stage, version, when, drill=drill).to_dict()
    emit(decision, as_json, lambda: _print_decision(decision))
    if not decision["allowed"]:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("promote")
def promote(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    drill: Annotated[bool, typer.Option(help="Run the whole path, deploy nothing.")] = False,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote now; every gate is checked again. Exit 1 when blocked (nothing deployed)."""
    with acting(token) as ctx:
        decision, row = pipelines.promote(ctx, service, stage, version, drill=drill)
        result = {
            "decision": decision.to_dict(),
            "deployment": pipelines.deployment_snapshot(row) if row else None,
        }

    def human() -> None:
        _print_decision(result["decision"])
        if result["deployment"]:
            d = result["deployment"]
            console.print(
                f"promoted: {d['stage']} runs {d['digest']} ({d['state']} until {d['bake_until']})"
            )
        elif drill and decision.allowed:
            console.print("drill: the whole path ran; nothing was deployed")

    emit(result, as_json, human)
    if not decision.allowed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("approve")
def approve_stage(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    comment: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version into a stage that asks for a manual approval (as MECH_TOKEN's user)."""
    with acting(token) as ctx:
        row = pipelines.approve_stage(ctx, service, stage, version, comment)
        data = {
            "service": row.service_key,
            "stage": row.stage,
            "digest": row.digest,
            "approver": row.approver,
        }
    emit(
        data,
        as_json,
        lambda: console.print(f"{data['approver']} approved {data['digest']} into {stage}"),
    )


@app.command("history")
def history(
    service: ServiceOpt,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The service's deploy timeline, newest first."""
    with acting() as ctx:
        rows = [pipelines.timeline_snapshot(r) for r in pipelines.timeline(ctx, service, limit)]
    emit(
        rows,
        as_json,
        lambda: table(
            f"{service} history",
            ["at", "kind", "stage", "digest", "actor"],
            [[r["at"], r["kind"], r["stage"], r["digest"], r["actor"]] for r in rows],
        ),
    )


# --- pipelines, versions, tests ----------------------------------------------------------


def _print_pipeline(stages: list[dict[str, Any]]) -> None:
    table(
        "Pipeline",
        ["stage", "suites", "bake (min)", "alarms", "approval", "runs", "state"],
        [
            [
                s["name"],
                ", ".join(s["required_suites"]),
                s["bake_minutes"],
                ", ".join(s["alarms"]),
                f"{s['approval']['count']} of {'/'.join(s['approval']['roles'])}"
                if s["approval"]
                else "",
                s["deployment"]["digest"] if s["deployment"] else "",
                s["deployment"]["state"] if s["deployment"] else "",
            ]
            for s in stages
        ],
    )


@pipeline_app.command("set")
def pipeline_set(
    service: str,
    file: Annotated[str, typer.Option("--file", help="JSON list of stages, or - for stdin.")],
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a pipeline from JSON: [{"name": "beta", "required_suites": [...],
    "bake_minutes": 30, "alarms": [...], "approval": {"roles": ["leader"], "count": 1}}, …]."""
    try:
        stages = inputs.parse_json(_read(file))
    except ValueError as exc:
        fail(f"--file: not JSON: {exc}")
    with acting() as ctx:
        pipelines.set_pipeline(ctx, service, stages)
        data = pipelines.stage_states(ctx, service)
    emit(data, as_json, lambda: _print_pipeline(data))


@pipeline_app.command("show")
def pipeline_show(service: str, as_json: JsonOpt = False) -> None:
    """The stages, and the version each runs now."""
    with acting() as ctx:
        data = pipelines.stage_states(ctx, service)
    emit(data, as_json, lambda: _print_pipeline(data))


@versions_app.command("register")
def version_register(
    service: ServiceOpt,
    artifact: Annotated[str, typer.Option(help="The artifact id, e.g. v1.4.2 or a build number.")],
    digest: Annotated[str, typer.Option(help="The artifact's digest, e.g. sha256:…")],
    author: Annotated[str | None, typer.Option(help="Who wrote the change.")] = None,
    as_json: JsonOpt = False,
) -> None:
    with acting() as ctx:
        data = pipelines.version_snapshot(
            pipelines.register_version(ctx, service, artifact, digest, author)
        )
    emit(data, as_json, lambda: console.print(f"registered {artifact} ({digest})"))


@versions_app.command("list")
def version_list(service: ServiceOpt, as_json: JsonOpt = False) -> None:
    with acting() as ctx:
        rows = [pipelines.version_snapshot(v) for v in pipelines.list_versions(ctx, service)]
    emit(
        rows,
        as_json,
        lambda: table(
            "Versions",
            ["artifact", "digest", "author", "registered"],
            [[r["artifact"], r["digest"], r["author"], r["created_at"]] for r in rows],
        ),
    )


@tests_app.command("upload")
def tests_upload(
    file: Annotated[str, typer.Argument(help="A JUnit XML file, or - for stdin.")],
    service: ServiceOpt,
    version: VersionOpt,
    suite: Annotated[str, typer.Option(help="The suite's name as stages require it.")],
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a JUnit XML report of SUITE for VERSION (counts and failures)."""
    data = _read(file)
    with acting(token) as ctx:
        run = pipelines.test_run_snapshot(
            pipelines.upload_tests(ctx, service, version, suite, data)
        )

    def human() -> None:
        verdict = "[green]passed[/]" if run["passed"] else "[red]did not pass[/]"
        console.print(
            f"{suite} for {run['digest']}: {run['tests']} tests, {run['failures']} failures, "
            f"{run['errors']} errors, {run['skipped']} skipped: {verdict}"
        )
        for problem in run["problems"]:
            console.print(
                f"  - {problem['classname']}.{problem['name']}: {problem['message'][:200]}"
            )

    emit(run, as_json, human)


# --- block windows ---------------------------------------------------------------------

ScopeArg = Annotated[str, typer.Option("--scope", help="org, team, service or stage.")]
TargetArg = Annotated[
    str, typer.Option("--target", help="Team slug, service key, or service/stage.")
]


def _print_windows(rows: list[dict[str, Any]]) -> None:
    table(
        "Block windows",
        ["id", "scope", "kind", "reason", "expires"],
        [[r["id"], r["scope_key"], r["kind"], r["reason"], r["expires_at"]] for r in rows],
    )


@windows_app.command("list")
def windows_list(
    service: Annotated[str | None, typer.Option(help="Only the windows over this service.")] = None,
    stage: Annotated[str | None, typer.Option(help="…and this stage.")] = None,
    as_json: JsonOpt = False,
) -> None:
    with acting() as ctx:
        rows = [windows.snapshot(w) for w in windows.list_windows(ctx, service, stage)]
    emit(rows, as_json, lambda: _print_windows(rows))


@windows_app.command("add")
def windows_add(
    scope: ScopeArg,
    target: TargetArg,
    definition: Annotated[
        str,
        typer.Option(
            help='JSON, e.g. {"kind": "recurring", "rrule": "FREQ=WEEKLY;BYDAY=FR", '
            '"dtstart": "2026-01-02T15:00", "end_time": "09:00", "days_later": 3, "tz": "Europe/Berlin"}'
        ),
    ],
    reason: Annotated[str, typer.Option()] = "",
    window_id: Annotated[str | None, typer.Option("--id")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a one-off, recurring (RRULE) or public-holiday window."""
    try:
        parsed = inputs.parse_json(definition)
    except ValueError as exc:
        fail(f"--definition: not JSON: {exc}")
    with acting() as ctx:
        row = windows.snapshot(windows.create_window(ctx, scope, target, parsed, reason, window_id))
    emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("freeze")
def windows_freeze(
    scope: ScopeArg,
    target: TargetArg,
    until: Annotated[str, typer.Option(help="When it lifts, ISO 8601 with an offset.")],
    reason: Annotated[str, typer.Option()],
    as_json: JsonOpt = False,
) -> None:
    """An ad-hoc freeze from now until --until; it expires by itself."""
    lifts = _instant(until, "until")
    assert lifts is not None
    with acting() as ctx:
        row = windows.snapshot(windows.freeze(ctx, scope, target, lifts, reason))
    emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("update")
def windows_update(
    window_id: str,
    definition: Annotated[str, typer.Option(help="The new rule as JSON (see add).")],
    reason: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a window's rule (and reason); its scope stays."""
    try:
        parsed = inputs.parse_json(definition)
    except ValueError as exc:
        fail(f"--definition: not JSON: {exc}")
    with acting() as ctx:
        row = windows.snapshot(windows.update_window(ctx, window_id, parsed, reason))
    emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("delete")
def windows_delete(window_id: str) -> None:
    with acting() as ctx:
        windows.delete_window(ctx, window_id)
    console.print(f"deleted {window_id}")


@windows_app.command("import")
def windows_import(
    file: Annotated[str, typer.Argument(help="An .ics file, or - for stdin.")],
    scope: ScopeArg,
    target: TargetArg,
    tz: Annotated[str, typer.Option(help="Zone of floating and all-day times.")] = "UTC",
    as_json: JsonOpt = False,
) -> None:
    """Every event of an iCalendar file as a window, all or none."""
    data = _read(file)
    with acting() as ctx:
        rows = [windows.snapshot(w) for w in windows.import_ical(ctx, scope, target, data, tz)]
    emit(rows, as_json, lambda: _print_windows(rows))


@windows_app.command("export")
def windows_export(
    service: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
) -> None:
    """The windows as iCalendar on standard output."""
    with acting() as ctx:
        data = windows.export_ical(ctx, service, stage)
    sys.stdout.write(data.decode("utf-8"))


# --- break-glass -----------------------------------------------------------------------


def _print_requests(rows: list[dict[str, Any]]) -> None:
    table(
        "Break-glass",
        ["id", "status", "promotion", "requester", "ticket", "approvals", "drill"],
        [
            [
                r["id"],
                r["status"],
                f"{r['service']}/{r['stage']} {r['digest']}",
                r["requester"],
                f"{r['ticket']['reference']} ({r['ticket']['severity']})",
                ", ".join(r["approvals"]) or "none",
                "yes" if r["drill"] else "",
            ]
            for r in rows
        ],
    )


@breakglass_app.command("request")
def breakglass_request(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    reason: Annotated[str, typer.Option(help="Why this cannot wait.")],
    ticket: Annotated[str, typer.Option(help="An open SEV1/SEV2 ops ticket, e.g. 42.")],
    drill: Annotated[bool, typer.Option(help="Exercise the path; deploy nothing.")] = False,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask to promote this exact version through the block window that is its only blocker."""
    with acting(token) as ctx:
        row = breakglass.describe(
            ctx, breakglass.request(ctx, service, stage, version, reason, ticket, drill=drill)
        )
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("list")
def breakglass_list(
    service: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open")] = False,
    as_json: JsonOpt = False,
) -> None:
    with acting() as ctx:
        rows = [
            breakglass.describe(ctx, r) for r in breakglass.list_requests(ctx, service, open_only)
        ]
    emit(rows, as_json, lambda: _print_requests(rows))


@breakglass_app.command("show")
def breakglass_show(request_id: int, as_json: JsonOpt = False) -> None:
    """What an approver approves: the promotion, the ticket, the reason, who approved."""
    with acting() as ctx:
        row = breakglass.describe(ctx, breakglass.get(ctx, request_id))

    def human() -> None:
        _print_requests([row])
        console.print(f"reason: {row['reason']}")

    emit(row, as_json, human)


@breakglass_app.command("approve")
def breakglass_approve(
    request_id: int,
    service: ServiceOpt,
    stage: StageOpt,
    digest: Annotated[str, typer.Option(help="The exact digest you reviewed.")],
    comment: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve exactly this promotion (as MECH_TOKEN's user; the operator never counts)."""
    with acting(token) as ctx:
        row = breakglass.describe(
            ctx,
            breakglass.approve(
                ctx, request_id, service=service, stage=stage, digest=digest, comment=comment
            ),
        )
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("deny")
def breakglass_deny(
    request_id: int,
    reason: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A leader's veto."""
    with acting(token) as ctx:
        row = breakglass.describe(ctx, breakglass.deny(ctx, request_id, reason))
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("revoke")
def breakglass_revoke(request_id: int, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Withdraw your approval."""
    with acting(token) as ctx:
        row = breakglass.describe(ctx, breakglass.revoke(ctx, request_id))
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("reviews")
def breakglass_reviews(
    all_reviews: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Follow-up reviews of break-glass uses (open ones by default)."""
    with acting() as ctx:
        rows = [
            breakglass.review_snapshot(r) for r in breakglass.list_reviews(ctx, not all_reviews)
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Reviews",
            ["id", "request", "service", "opened", "closed"],
            [[r["id"], r["request"], r["service"], r["opened_at"], r["closed_at"]] for r in rows],
        ),
    )


@breakglass_app.command("close-review")
def breakglass_close_review(
    review_id: int,
    what_happened: Annotated[str, typer.Option()],
    why: Annotated[str, typer.Option()],
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record what happened and why; the review closes."""
    with acting(token) as ctx:
        row = breakglass.review_snapshot(
            breakglass.close_review(ctx, review_id, what_happened, why)
        )
    emit(row, as_json, lambda: console.print(f"review {review_id} closed"))
