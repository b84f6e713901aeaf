"""What every `mech` command shares and nothing heavy: exit codes, the consoles, the
``--json`` option, errors without tracebacks, JSON or table output.

Kept apart from ``core.cli`` (which needs the database, alembic and the accounts) so that
commands run without a database, like `mech doc check` in a pre-commit hook, start fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="MECH_TOKEN", help="Act as this API token's user."),
]

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    # The message is text, not markup: `mechanisms[postgres]` or a user's `[x]` stay as typed,
    # and one message stays one line however narrow the terminal.
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        human()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)
