"""`mech`: assembled from the core's commands and each mechanism's ``cli.app``.

Exit codes: 0 success, 1 a check failed (a broken audit chain, a blocked deploy),
2 usage or input error."""

from __future__ import annotations

import typer

from mechanisms import modules
from mechanisms.core import cli as core_cli

app = typer.Typer(
    name="mech",
    help="Mechanisms: run an engineering organisation on mechanisms, not good intentions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
core_cli.register(app)
for name, sub_app in modules.cli_apps():
    app.add_typer(sub_app, name=name)


def main() -> None:
    app()
