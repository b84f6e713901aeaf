"""`mech` commands of the core: serve, worker, db, demo, users, teams, tokens, audit,
webhooks. Commands act directly on the database as the local operator (``system:cli``).

They run on the server itself: every command that opens the database here refuses to run
while ``MECH_URL`` is set, because that variable says "act through this server's API" (a
CI job's setting) and these commands cannot; a CI job holds a token, never the database."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mechanisms.core import accounts, audit, audit_anchor, migrate, webhooks
from mechanisms.core.cli_output import (  # noqa: F401 - re-exported for the mechanisms' CLIs
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    JsonOpt,
    TokenOpt,
    console,
    emit,
    errors,
    fail,
    table,
)
from mechanisms.core.clock import SystemClock
from mechanisms.core.config import get_settings
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database, DatabaseDriverMissing
from mechanisms.core.errors import MechanismsError
from mechanisms.core.identity import system_principal


def database() -> Database:
    if os.environ.get("MECH_URL"):
        fail(
            "this command opens the database directly and runs on the server itself; "
            "MECH_URL is set, which asks commands to act through a server's API, and this "
            "one cannot (`mech deploy …` can). Unset MECH_URL to run it here."
        )
    try:
        return Database(get_settings().database_url)
    except DatabaseDriverMissing as exc:
        fail(exc.message)


def ensure_schema(db: Database) -> None:
    if not migrate.is_up_to_date(db):
        fail("the database schema is not up to date; run `mech db upgrade` first")


@contextmanager
def operator() -> Iterator[Ctx]:
    """One unit of work as the local operator; errors become a clear message and exit 2."""
    db = database()
    try:
        ensure_schema(db)
        with db.transaction() as session:
            yield Ctx(session, system_principal("cli"), SystemClock().now())
    except MechanismsError as exc:
        fail(exc.message)
    finally:
        db.dispose()


@contextmanager
def acting(token: str | None = None) -> Iterator[Ctx]:
    """One unit of work as the API token's user (checked as the API checks it), or as the
    local operator without one: how a person acts as themselves from a terminal."""
    db = database()
    try:
        ensure_schema(db)
        with db.transaction() as session:
            now = SystemClock().now()
            principal = (
                accounts.check_token(session, token, now).principal
                if token
                else system_principal("cli")
            )
            yield Ctx(session, principal, now)
    except MechanismsError as exc:
        fail(exc.message)
    finally:
        db.dispose()


# --- serve, worker, db, demo --------------------------------------------------------


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    demo: Annotated[bool, typer.Option("--demo", help="Seed the demo organisation first.")] = False,
    worker: Annotated[bool, typer.Option(help="Run one worker in this process.")] = True,
) -> None:
    """Run the API, the web UI and (by default) one worker."""
    import uvicorn

    from mechanisms.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    db = database()
    migrate.upgrade(db)
    if demo:
        _print_demo(db)
    app = create_app(db, run_worker=worker)
    console.print(f"Mechanisms on [bold]http://{host}:{port}[/] (database: {_redacted(db.url)})")
    # The app believes forwarded headers only from MECH_TRUSTED_PROXIES (uvicorn's own
    # default would trust whatever runs on 127.0.0.1).
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run_worker(
    once: Annotated[
        bool, typer.Option("--once", help="Work until nothing is due, then exit.")
    ] = False,
) -> None:
    """Run a worker alone (scale-out: run several against one PostgreSQL database)."""
    from mechanisms import modules
    from mechanisms.core.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    modules.import_all()
    db = database()
    ensure_schema(db)
    worker = Worker(db)
    try:
        if once:
            moved = worker.run_until_idle()
            console.print(f"moved {moved} item(s)")
        else:
            worker.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.close()


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations (safe to run from several replicas at once on PostgreSQL)."""
    db = database()
    migrate.upgrade(db, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(db)}[/]")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision and whether it is up to date."""
    db = database()
    current, head = migrate.current_revision(db), migrate.head_revision()
    console.print(f"current: {current or '(empty)'}; newest: {head}")
    if current != head:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _print_demo(db: Database) -> None:
    from mechanisms import demo as demo_module
    from mechanisms import modules

    modules.import_all()
    info = demo_module.seed(db)
    console.print("[bold]Demo organisation[/] " + ("seeded" if info.created else "already present"))
    table("Demo logins", ["username", "password", "roles"], [list(row) for row in info.logins])
    console.print(
        f"API token for {info.token_user} (admin scope, shown once): [bold]{info.token}[/]"
    )


def demo() -> None:
    """Seed the demo organisation (once) and print its logins and a fresh API token."""
    db = database()
    migrate.upgrade(db)
    _print_demo(db)


# --- users, teams, tokens -----------------------------------------------------------

user_app = typer.Typer(help="People and bots.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    username: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[
        str | None, typer.Option(help="Omit to be asked (people) or for bots.")
    ] = None,
    bot: Annotated[
        bool, typer.Option("--bot", help="A machine account: tokens only, never an approver.")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Site administrator.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a person (with a password) or a bot."""
    if password is None and not bot:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with operator() as ctx:
        user = accounts.create_user(
            ctx, username, name, password=password, email=email, is_bot=bot, is_site_admin=admin
        )
        snapshot = accounts.user_snapshot(user)
    emit(
        snapshot,
        as_json,
        lambda: console.print(f"added {'bot' if bot else 'user'} [bold]{snapshot['username']}[/]"),
    )


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """List users."""
    with operator() as ctx:
        users = [accounts.user_snapshot(u) for u in accounts.list_users(ctx)]
    emit(
        users,
        as_json,
        lambda: table(
            "Users",
            ["username", "name", "kind", "site admin"],
            [
                [
                    u["username"],
                    u["display_name"],
                    "bot" if u["is_bot"] else "person",
                    "yes" if u["is_site_admin"] else "",
                ]
                for u in users
            ],
        ),
    )


@user_app.command("password")
def user_password(username: str) -> None:
    """Set a person's password."""
    password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with operator() as ctx:
        accounts.set_password(ctx, username, password)
    console.print(f"password set for [bold]{username}[/]")


team_app = typer.Typer(help="Teams, organisations and membership.", no_args_is_help=True)
member_app = typer.Typer(help="Who is in a team, with which role.", no_args_is_help=True)
team_app.add_typer(member_app, name="member")


@team_app.command("add")
def team_add(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    parent: Annotated[
        str | None, typer.Option(help="Parent team; omit for an organisation.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a team (or, without --parent, an organisation)."""
    with operator() as ctx:
        snapshot = accounts.team_snapshot(accounts.create_team(ctx, slug, name, parent))
    emit(snapshot, as_json, lambda: console.print(f"added team [bold]{snapshot['slug']}[/]"))


@team_app.command("list")
def team_list(as_json: JsonOpt = False) -> None:
    """List teams."""
    with operator() as ctx:
        teams = [accounts.team_snapshot(t) for t in accounts.list_teams(ctx)]
    by_id = {t["id"]: t["slug"] for t in teams}
    emit(
        teams,
        as_json,
        lambda: table(
            "Teams",
            ["slug", "name", "parent"],
            [[t["slug"], t["name"], by_id.get(t["parent_id"], "")] for t in teams],
        ),
    )


@member_app.command("add")
def member_add(
    team: str,
    username: str,
    role: Annotated[str, typer.Option(help="viewer, engineer, leader or admin.")] = "engineer",
) -> None:
    """Add a person to a team with a role (or change their role)."""
    with operator() as ctx:
        accounts.set_membership(ctx, team, username, role)
    console.print(f"[bold]{username}[/] is {role} of [bold]{team}[/]")


@member_app.command("remove")
def member_remove(team: str, username: str) -> None:
    """Remove a person from a team."""
    with operator() as ctx:
        accounts.remove_membership(ctx, team, username)
    console.print(f"removed [bold]{username}[/] from [bold]{team}[/]")


@member_app.command("list")
def member_list(team: str, as_json: JsonOpt = False) -> None:
    """List a team's members."""
    with operator() as ctx:
        members = [
            {"username": u.username, "name": u.display_name, "role": r}
            for u, r in accounts.team_members(ctx, team)
        ]
    emit(
        members,
        as_json,
        lambda: table(
            f"Members of {team}", ["username", "name", "role"], [list(m.values()) for m in members]
        ),
    )


token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    scope: Annotated[
        str, typer.Option(help="Most the token may do: viewer, engineer, leader or admin.")
    ] = "engineer",
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token for a user or bot and print it once."""
    with operator() as ctx:
        expires = ctx.now + timedelta(days=expires_days) if expires_days else None
        token, secret = accounts.create_token(ctx, username, name, scope, expires)
        snapshot = accounts.token_snapshot(token)
    emit({**snapshot, "token": secret}, as_json, lambda: console.print(secret))


@token_app.command("list")
def token_list(username: str, as_json: JsonOpt = False) -> None:
    """List a user's tokens (never the tokens themselves)."""
    with operator() as ctx:
        tokens = [accounts.token_snapshot(t) for t in accounts.list_tokens(ctx, username)]
    emit(
        tokens,
        as_json,
        lambda: table(
            f"Tokens of {username}",
            ["id", "name", "prefix", "scope", "expires", "revoked"],
            [
                [
                    t["id"],
                    t["name"],
                    t["prefix"] + "…",
                    t["scope"],
                    t["expires_at"] or "never",
                    "yes" if t["revoked"] else "",
                ]
                for t in tokens
            ],
        ),
    )


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token at once."""
    with operator() as ctx:
        accounts.revoke_token(ctx, token_id)
    console.print(f"revoked token {token_id}")


# --- audit and webhooks -------------------------------------------------------------

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


CheckpointsOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="Also prove the history up to each signed checkpoint in this file was not rewritten.",
    ),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The checkpoints' Ed25519 public key (PEM); by default the configured signing key's.",
    ),
]


def _checkpoint_key(public_key: Path | None) -> Ed25519PublicKey:
    if public_key is not None:
        return audit_anchor.load_public_key(public_key)
    key = audit_anchor.signing_key(get_settings())
    if key is None:
        fail("give --public-key, or configure MECH_AUDIT_SIGNING_KEY_FILE")
    return key.public_key()


def _verify_chain(checkpoints: Path | None, public_key: Path | None) -> audit.VerifyResult:
    db = database()
    try:
        ensure_schema(db)
        with db.transaction(write=False) as session:
            if checkpoints is None:
                return audit.verify(session)
            key = _checkpoint_key(public_key)
            return audit_anchor.verify(session, audit_anchor.read(checkpoints), key)
    except MechanismsError as exc:
        fail(exc.message)
    finally:
        db.dispose()


@audit_app.command("verify")
def audit_verify(
    checkpoints: CheckpointsOpt = None, public_key: PublicKeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Check the hash chain (and signed checkpoints): exit 0 when intact, 1 naming the
    first bad record or rewritten checkpoint."""
    result = _verify_chain(checkpoints, public_key)
    data = {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "checkpoint": result.bad_checkpoint,
    }
    if as_json:
        emit(data, True, lambda: None)
    elif result.ok:
        anchored = " and every checkpoint matches" if checkpoints else ""
        console.print(f"[green]audit chain intact[/]: {result.checked} records verified{anchored}")
    else:
        errors.print(
            f"[bold red]audit chain broken[/] at record {result.first_bad_seq}: {result.reason} "
            f"({result.checked} records before it verified)"
        )
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Append to this file (default MECH_AUDIT_CHECKPOINT_FILE)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign the chain's head with the audit signing key and append it to the checkpoints."""
    settings = get_settings()
    target = out or (
        Path(settings.audit_checkpoint_file) if settings.audit_checkpoint_file else None
    )
    if target is None:
        fail("give --out, or configure MECH_AUDIT_CHECKPOINT_FILE")
    db = database()
    try:
        ensure_schema(db)
        key = audit_anchor.signing_key(settings)
        if key is None:
            fail("configure MECH_AUDIT_SIGNING_KEY_FILE (or MECH_AUDIT_SIGNING_KEY) first")
        with db.transaction(write=False) as session:
            previous = audit_anchor.last_signed(target, key)
            checkpoint = audit_anchor.take(session, key, SystemClock().now(), previous)
        audit_anchor.append(target, checkpoint)
    except audit_anchor.ChainBroken as exc:
        fail(exc.message, code=EXIT_CHECK_FAILED)
    except MechanismsError as exc:
        fail(exc.message)
    finally:
        db.dispose()
    emit(
        json.loads(checkpoint.to_json()),
        as_json,
        lambda: console.print(f"checkpoint of record {checkpoint.seq} appended to {target}"),
    )


@audit_app.command("keygen")
def audit_keygen(
    private: Annotated[Path, typer.Argument(help="Where to write the private key (PEM).")],
) -> None:
    """Make an Ed25519 key pair for checkpoints: the private key (kept out of the database,
    readable by the worker only) and PRIVATE.pub, the public key verifiers need."""
    if private.exists():
        fail(f"{private} exists; refusing to overwrite a signing key")
    private_pem, public = audit_anchor.new_signing_key_pem()
    private.parent.mkdir(parents=True, exist_ok=True)
    private.touch(mode=0o600)
    private.write_bytes(private_pem)
    public_path = private.with_name(private.name + ".pub")
    public_path.write_bytes(public)
    console.print(f"private key: {private}\npublic key: {public_path}")


@audit_app.command("list")
def audit_list(
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    object_type: Annotated[str | None, typer.Option("--type")] = None,
    object_id: Annotated[str | None, typer.Option("--id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show the newest audit records, filtered."""
    with operator() as ctx:
        rows = [
            audit.to_dict(r)
            for r in audit.browse_for(
                ctx, audit.AuditFilter(actor, action, object_type, object_id, limit=limit)
            )
        ]
    emit(
        rows,
        as_json,
        lambda: table(
            "Audit trail",
            ["#", "at", "actor", "action", "object"],
            [
                [r["seq"], r["at"], r["actor"], r["action"], f"{r['object_type']} {r['object_id']}"]
                for r in rows
            ],
        ),
    )


webhook_app = typer.Typer(
    help="Outbound webhooks (Standard Webhooks signatures).", no_args_is_help=True
)


@webhook_app.command("add")
def webhook_add(
    url: str,
    events: Annotated[
        list[str] | None,
        typer.Option("--event", help="Event type pattern; repeat. Default: every event."),
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register a webhook and print its signing secret once."""
    with operator() as ctx:
        hook, secret = webhooks.create(ctx, url, events or ["*"], description)
        snapshot = webhooks.snapshot(hook)
    emit(
        {**snapshot, "secret": secret},
        as_json,
        lambda: console.print(f"webhook {snapshot['id']} added; secret: [bold]{secret}[/]"),
    )


@webhook_app.command("list")
def webhook_list(as_json: JsonOpt = False) -> None:
    """List webhooks and delivery counts."""
    with operator() as ctx:
        hooks = [webhooks.snapshot(h) for h in webhooks.list_all(ctx)]
        counts = webhooks.delivery_counts(ctx)
    emit(
        {"webhooks": hooks, "deliveries": counts},
        as_json,
        lambda: (
            table(
                "Webhooks",
                ["id", "url", "events", "active"],
                [[h["id"], h["url"], " ".join(h["event_types"]), h["active"]] for h in hooks],
            ),
            console.print(
                "deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            ),
        ),
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(run_worker)
    app.command("demo")(demo)
    app.add_typer(db_app, name="db")
    app.add_typer(user_app, name="user")
    app.add_typer(team_app, name="team")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
    app.add_typer(webhook_app, name="webhook")
