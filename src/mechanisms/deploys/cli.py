"""`mech deploy …`: the gate for any CI system, test uploads, promotions, block windows and
break-glass from the command line.

Exit codes: 0 done (the gate is open, the promotion went through), 1 the gate is blocked,
2 a usage or input error, or a refusal (a token the server does not accept, a role that
may not, a server out of reach). ``--json`` everywhere.

Every command takes one of two paths, with the same output and exit codes:

- With ``MECH_URL`` (or ``--url``) it calls that server's API as ``MECH_TOKEN``'s user
  (cli_remote.py). That is how CI jobs run: they hold an API token, never the database, so
  whoever controls a pipeline can do only what the token's user may do through the API.
  This path loads no database, web framework or service code.
- Without it, it opens ``MECH_DATABASE_URL`` and calls the services (cli_direct.py): for
  commands run on the server itself. It acts as the local operator, who never counts as a
  person for break-glass or stage approvals, or with ``MECH_TOKEN`` (``--token``) as that
  token's user, checked against the database as the API checks it."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mechanisms.core import inputs
from mechanisms.core.cli_http import UrlOpt
from mechanisms.core.cli_output import (
    EXIT_CHECK_FAILED,
    JsonOpt,
    TokenOpt,
    console,
    emit,
    fail,
    table,
)

if TYPE_CHECKING:
    from mechanisms.deploys.cli_direct import Direct
    from mechanisms.deploys.cli_remote import Remote


def deploys(url: str | None, token: str | None) -> Direct | Remote:
    """The path a command takes: the server's API when given one, else the database."""
    if url:
        from mechanisms.deploys.cli_remote import Remote

        return Remote(url, token)
    from mechanisms.deploys.cli_direct import Direct

    return Direct(token)


app = typer.Typer(
    help="Deploys: pipelines gated by tests, block windows and break-glass. With MECH_URL "
    "and MECH_TOKEN (--url, --token) every command acts through that server's API, as CI "
    "jobs should; without MECH_URL it opens MECH_DATABASE_URL directly, on the server.",
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
changes_app = typer.Typer(
    help="Protected changes waiting for a second leader (people act with MECH_TOKEN).",
    no_args_is_help=True,
)
app.add_typer(breakglass_app, name="breakglass")
app.add_typer(changes_app, name="changes")

ServiceOpt = Annotated[str, typer.Option("--service", help="The service's key.")]
StageOpt = Annotated[str, typer.Option("--stage", help="The stage, e.g. prod.")]
VersionOpt = Annotated[str, typer.Option("--version", help="A digest or artifact id.")]
TicketOpt = Annotated[
    str | None, typer.Option(help="The open ops ticket a protected change cites, e.g. 42.")
]
WhyOpt = Annotated[str | None, typer.Option("--why", help="Why the protected change is made.")]


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


def _json(text: str | bytes, option: str) -> Any:
    try:
        return inputs.parse_json(text)
    except ValueError as exc:
        fail(f"{option}: not JSON: {exc}")


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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """May this version go into this stage now? Exit 0 yes, 1 blocked (each blocker and how
    to clear it is printed), 2 usage error."""
    when = _instant(at, "at")
    decision = deploys(url, token).gate(service, stage, version, when, drill)
    emit(decision, as_json, lambda: _print_decision(decision))
    if not decision["allowed"]:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("promote")
def promote(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    drill: Annotated[bool, typer.Option(help="Run the whole path, deploy nothing.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote now; every gate is checked again. Exit 1 when blocked (nothing deployed)."""
    result = deploys(url, token).promote(service, stage, version, drill)
    allowed = result["decision"]["allowed"]

    def human() -> None:
        _print_decision(result["decision"])
        if result["deployment"]:
            d = result["deployment"]
            console.print(
                f"promoted: {d['stage']} runs {d['digest']} ({d['state']} until {d['bake_until']})"
            )
        elif drill and allowed:
            console.print("drill: the whole path ran; nothing was deployed")

    emit(result, as_json, human)
    if not allowed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("approve")
def approve_stage(
    service: ServiceOpt,
    stage: StageOpt,
    version: VersionOpt,
    comment: Annotated[str, typer.Option()] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version into a stage that asks for a manual approval (as MECH_TOKEN's user)."""
    data = deploys(url, token).approve_stage(service, stage, version, comment)
    emit(
        data,
        as_json,
        lambda: console.print(f"{data['approver']} approved {data['digest']} into {stage}"),
    )


@app.command("history")
def history(
    service: ServiceOpt,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The service's deploy timeline, newest first."""
    rows = deploys(url, token).history(service, limit)
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
    ticket: TicketOpt = None,
    why: WhyOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a pipeline from JSON: [{"name": "beta", "required_suites": [...],
    "bake_minutes": 30, "alarms": [...], "approval": {"roles": ["leader"], "count": 1}}, …].
    Lowering a requirement is a protected change: a leader's token, citing a ticket."""
    stages = _json(_read(file), "--file")
    data = deploys(url, token).set_pipeline(service, stages, ticket, why)
    if _is_pending(data):
        _emit_pending(data, as_json)
    else:
        emit(data, as_json, lambda: _print_pipeline(data))


@pipeline_app.command("show")
def pipeline_show(
    service: str, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """The stages, and the version each runs now."""
    data = deploys(url, token).pipeline(service)
    emit(data, as_json, lambda: _print_pipeline(data))


@versions_app.command("register")
def version_register(
    service: ServiceOpt,
    artifact: Annotated[str, typer.Option(help="The artifact id, e.g. v1.4.2 or a build number.")],
    digest: Annotated[str, typer.Option(help="The artifact's digest, e.g. sha256:…")],
    author: Annotated[
        str | None, typer.Option(help="Who wrote the change: a username or email.")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a build of the service: its artifact id and digest."""
    data = deploys(url, token).register_version(service, artifact, digest, author)
    emit(data, as_json, lambda: console.print(f"registered {artifact} ({digest})"))


@versions_app.command("name-author")
def version_name_author(
    service: ServiceOpt,
    version: VersionOpt,
    author: Annotated[str, typer.Option(help="Who wrote the change: a username or email.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Name the author of a version registered without one (needed before break-glass)."""
    data = deploys(url, token).name_author(service, version, author)
    emit(data, as_json, lambda: console.print(f"{data['digest']} is by {data['author']}"))


@versions_app.command("list")
def version_list(
    service: ServiceOpt, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """The service's registered versions."""
    rows = deploys(url, token).versions(service)
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a JUnit XML report of SUITE for VERSION (counts and failures)."""
    run = deploys(url, token).upload_tests(service, version, suite, _read(file))

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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The block windows, all or those over a service (and stage)."""
    rows = deploys(url, token).windows(service, stage)
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a one-off, recurring (RRULE) or public-holiday window."""
    parsed = _json(definition, "--definition")
    row = deploys(url, token).add_window(scope, target, parsed, reason, window_id)
    emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("freeze")
def windows_freeze(
    scope: ScopeArg,
    target: TargetArg,
    until: Annotated[str, typer.Option(help="When it lifts, ISO 8601 with an offset.")],
    reason: Annotated[str, typer.Option()],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An ad-hoc freeze from now until --until; it expires by itself."""
    lifts = _instant(until, "until")
    assert lifts is not None
    row = deploys(url, token).freeze(scope, target, lifts, reason)
    emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("update")
def windows_update(
    window_id: str,
    definition: Annotated[str, typer.Option(help="The new rule as JSON (see add).")],
    reason: Annotated[str | None, typer.Option()] = None,
    ticket: TicketOpt = None,
    why: WhyOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace a window's rule (and reason); its scope stays. Narrowing a window in force or
    starting within a day is a protected change: a leader's token, citing a ticket."""
    parsed = _json(definition, "--definition")
    row = deploys(url, token).update_window(window_id, parsed, reason, ticket, why)
    if _is_pending(row):
        _emit_pending(row, as_json)
    else:
        emit(row, as_json, lambda: _print_windows([row]))


@windows_app.command("delete")
def windows_delete(
    window_id: str,
    ticket: TicketOpt = None,
    why: WhyOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a block window. One in force or starting within a day is a protected change."""
    pending = deploys(url, token).delete_window(window_id, ticket, why)
    if pending is not None:
        _emit_pending(pending, as_json)
    else:
        console.print(f"deleted {window_id}")


# --- protected changes -----------------------------------------------------------------


def _is_pending(answer: Any) -> bool:
    """Whether a command's answer is a protected change waiting for a second leader."""
    return isinstance(answer, dict) and "protection" in answer


def _print_changes(rows: list[dict[str, Any]]) -> None:
    table(
        "Protected changes",
        ["id", "status", "change", "requester", "ticket", "approvals", "digest"],
        [
            [
                r["id"],
                r["status"],
                f"{r['kind']} {r['subject']}",
                r["requester"],
                r["ticket"],
                ", ".join(r["approvals"]) or "none",
                r["digest"],
            ]
            for r in rows
        ],
    )


def _emit_pending(row: dict[str, Any], as_json: bool) -> None:
    def human() -> None:
        _print_changes([row])
        console.print(
            f"protected change {row['id']} waits for a second leader: "
            f"mech deploy changes approve {row['id']} --digest {row['digest']}"
        )

    emit(row, as_json, human)


@changes_app.command("list")
def changes_list(
    service: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    rows = deploys(url, token).protected_changes(service, open_only)
    emit(rows, as_json, lambda: _print_changes(rows))


@changes_app.command("approve")
def changes_approve(
    change_id: int,
    digest: Annotated[str, typer.Option(help="The digest of the proposal you reviewed.")],
    comment: Annotated[str, typer.Option()] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve exactly this proposal as a second leader (MECH_TOKEN's user); it is applied."""
    row = deploys(url, token).approve_change(change_id, digest, comment)
    emit(row, as_json, lambda: _print_changes([row]))


@changes_app.command("deny")
def changes_deny(
    change_id: int,
    reason: Annotated[str, typer.Option()] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A leader's veto."""
    row = deploys(url, token).deny_change(change_id, reason)
    emit(row, as_json, lambda: _print_changes([row]))


@windows_app.command("import")
def windows_import(
    file: Annotated[str, typer.Argument(help="An .ics file, or - for stdin.")],
    scope: ScopeArg,
    target: TargetArg,
    tz: Annotated[str, typer.Option(help="Zone of floating and all-day times.")] = "UTC",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every event of an iCalendar file as a window, all or none."""
    rows = deploys(url, token).import_windows(scope, target, _read(file), tz)
    emit(rows, as_json, lambda: _print_windows(rows))


@windows_app.command("export")
def windows_export(
    service: Annotated[str | None, typer.Option()] = None,
    stage: Annotated[str | None, typer.Option()] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The windows as iCalendar on standard output."""
    sys.stdout.write(deploys(url, token).export_windows(service, stage))


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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask to promote this exact version through the block window that is its only blocker."""
    row = deploys(url, token).request_breakglass(service, stage, version, reason, ticket, drill)
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("list")
def breakglass_list(
    service: Annotated[str | None, typer.Option()] = None,
    open_only: Annotated[bool, typer.Option("--open")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Break-glass requests, all or the open ones."""
    rows = deploys(url, token).breakglass_requests(service, open_only)
    emit(rows, as_json, lambda: _print_requests(rows))


@breakglass_app.command("show")
def breakglass_show(
    request_id: int, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """What an approver approves: the promotion, the ticket, the reason, who approved."""
    row = deploys(url, token).breakglass_request(request_id)

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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve exactly this promotion (as MECH_TOKEN's user; the operator never counts)."""
    row = deploys(url, token).approve_breakglass(request_id, service, stage, digest, comment)

    def human() -> None:
        _print_requests([row])
        standing = row.get("your_approval") or {}
        if standing.get("why"):
            console.print(f"your approval: {standing['why']}")

    emit(row, as_json, human)


@breakglass_app.command("deny")
def breakglass_deny(
    request_id: int,
    reason: Annotated[str, typer.Option()] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A leader's veto."""
    row = deploys(url, token).deny_breakglass(request_id, reason)
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("lift-denial")
def breakglass_lift_denial(
    request_id: int,
    reason: Annotated[str, typer.Option()] = "",
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A leader lets the requester of a denied request ask again for that version."""
    row = deploys(url, token).lift_denial(request_id, reason)
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("revoke")
def breakglass_revoke(
    request_id: int, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Withdraw your approval."""
    row = deploys(url, token).revoke_breakglass(request_id)
    emit(row, as_json, lambda: _print_requests([row]))


@breakglass_app.command("reviews")
def breakglass_reviews(
    all_reviews: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow-up reviews of break-glass uses (open ones by default)."""
    rows = deploys(url, token).reviews(not all_reviews)
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
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record what happened and why; the review closes."""
    row = deploys(url, token).close_review(review_id, what_happened, why)
    emit(row, as_json, lambda: console.print(f"review {review_id} closed"))
