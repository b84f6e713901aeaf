"""`mech`: assembled from the core's commands and each mechanism's ``cli.app``.

Exit codes: 0 success, 1 a check failed (a broken audit chain, a blocked deploy),
2 usage or input error.

Sub-commands are loaded lazily: `mech --help` lists them from the names and summaries
below and in modules.py without importing anything, and `mech <command> …` imports only
that command's module. `mech doc check` runs in pre-commit hooks and `mech deploy gate`
on every promotion in CI: neither should pay for FastAPI, alembic or the other
mechanisms."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from mechanisms import modules

# The core's commands (core/cli.py ``register``), with the one-line help `mech --help` shows.
CORE_COMMANDS: dict[str, str] = {
    "serve": "Run the API, the web UI and (by default) one worker.",
    "worker": "Run a worker alone (scale-out: run several against one PostgreSQL database).",
    "demo": "Seed the demo organisation (once) and print its logins and a fresh API token.",
    "db": "Database schema.",
    "user": "People and bots.",
    "team": "Teams, organisations and membership.",
    "token": "API tokens (shown once, stored hashed).",
    "audit": "The tamper-evident audit trail.",
    "webhook": "Outbound webhooks (Standard Webhooks signatures).",
}


def mechanism_commands() -> dict[str, tuple[str, str]]:
    """`mech` command -> (module that defines its ``app``, one-line help)."""
    return {
        m.command or m.name: (
            f"mechanisms.{m.name}.cli",
            f"{m.title}: {m.summary[:1].lower()}{m.summary[1:]}.",
        )
        for m in modules.importable()
    }


def _core_command(name: str) -> Any:
    from mechanisms.core import cli as core_cli

    core = typer.Typer()
    core_cli.register(core)
    return typer.main.get_group(core).commands.get(name)


def _mechanism_command(name: str, module_name: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # a mechanism without a CLI yet
        raise
    group = typer.main.get_group(module.app)
    group.name = name
    return group


class LazyGroup(TyperGroup):
    """`mech`'s group: every sub-command is known by name and help, imported on use."""

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*CORE_COMMANDS, *mechanism_commands()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        mechanisms = mechanism_commands()
        if cmd_name not in CORE_COMMANDS and cmd_name not in mechanisms:
            return None
        if self.listing:
            # Help only needs the name and the line: no import for it.
            summary = CORE_COMMANDS.get(cmd_name) or mechanisms[cmd_name][1]
            return typer.core.TyperCommand(cmd_name, help=summary)
        if cmd_name in CORE_COMMANDS:
            command = _core_command(cmd_name)
        else:
            command = _mechanism_command(cmd_name, mechanisms[cmd_name][0])
        if command is not None:
            self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="mech",
    cls=LazyGroup,
    help="Mechanisms: run an engineering organisation on mechanisms, not good intentions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _mech() -> None:
    # A callback makes `mech` a group even though its commands are added only on use.
    pass


def main() -> None:
    app()
