"""`mech doc …`: decision docs from the command line. Each area's commands live in a module
of their own and are added here."""

from __future__ import annotations

import typer

from mechanisms.docs import cli_registry

app = typer.Typer(help="Decision docs: write, check, review and decide.", no_args_is_help=True)
cli_registry.register(app)
