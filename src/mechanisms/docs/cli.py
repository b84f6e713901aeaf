"""`mech doc …`: check Markdown documents from a terminal, a pre-commit hook or CI.

`mech doc check FILE…` prints each file's findings (line:column, the matched words,
why it matters, what to do) and its statistics; `--format json` or `--format sarif`
for machines. Exit codes: 0 every file passed, 1 a threshold failed, 2 a usage or
input error (a file missing, empty, binary, not UTF-8 or too large; a bad
configuration). The checks need no database, and this module imports none: it runs
in pre-commit hooks and CI, where start-up time is paid on every run.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mechanisms import __version__
from mechanisms.core.cli_output import EXIT_CHECK_FAILED, EXIT_USAGE, console, errors, fail
from mechanisms.core.errors import MechanismsError
from mechanisms.docs import config as doc_config
from mechanisms.docs import rules
from mechanisms.docs.areas import join_commands_lazily
from mechanisms.docs.check import Report, check_document
from mechanisms.docs.sarif import to_sarif
from mechanisms.docs.source import MAX_BYTES, DocumentError, decode

app = typer.Typer(
    help="Docs: decision docs, checked for structure, length and clear prose.",
    no_args_is_help=True,
)

# Colours by kind, shared in spirit with the editor page's legend.
KIND_STYLES = {
    "passive": "magenta",
    "weasel": "yellow",
    "hedge": "cyan",
    "adverb": "blue",
    "there-is": "green",
    "cliche": "bright_red",
    "long-sentence": "bright_yellow",
    "unquantified": "bright_magenta",
    "structure": "red",
}
SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "suggestion": "dim"}


class Format(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"


# GitHub Actions workflow commands: annotations on the pull request's lines.
GITHUB_LEVELS = {"error": "error", "warning": "warning", "suggestion": "notice"}


def _github_escape(value: str, *, property: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if property else value


def _github(name: str, report: Report) -> list[str]:
    file = _github_escape(name, property=True)
    lines = []
    for f in report.findings:
        where = f"file={file},line={f.line},col={f.column},endLine={f.end_line},endColumn={f.end_column}"
        quoted = f"“{f.text[:120]}”: " if f.text else ""
        message = _github_escape(f"{quoted}{f.message} → {f.suggestion}")
        lines.append(f"::{GITHUB_LEVELS[f.severity]} {where},title={f.rule}::{message}")
    for failure in report.failures:
        lines.append(f"::error file={file},title=threshold::{_github_escape(failure.message)}")
    return lines


def _config_for(
    path: Path | None, explicit: Path | None, cache: dict[Path, doc_config.CheckConfig]
) -> doc_config.CheckConfig:
    """The configuration that applies to a file: --config, else the nearest one above
    it (standard input: above the working folder), else the defaults."""
    start = path.resolve().parent if path is not None else Path.cwd()
    found = explicit or doc_config.find_config(start)
    if found is None:
        return doc_config.CheckConfig()
    if found not in cache:
        cache[found] = doc_config.load(found)
    return cache[found]


def _read(name: str) -> tuple[str, str]:
    """(display name, text) of a file argument; ``-`` reads standard input."""
    if name == "-":
        return "<stdin>", decode(sys.stdin.buffer.read(), "<stdin>")
    path = Path(name)
    if not path.exists():
        raise DocumentError(f"{name}: no such file")
    if path.is_dir():
        raise DocumentError(f"{name}: is a folder; name the Markdown files to check")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            # Refused before reading: a huge file costs no memory.
            raise DocumentError(f"{name}: {size:,} bytes is more than the {MAX_BYTES:,}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{name}: cannot read it ({exc.strerror})") from None
    return name, decode(data, name)


@app.command("check")
def check(
    files: Annotated[
        list[str], typer.Argument(help="Markdown files to check ('-' reads standard input).")
    ],
    output: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="text for people; json or sarif for tools; github for annotations in "
            "GitHub Actions.",
        ),
    ] = Format.text,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A .mechdoc.toml or pyproject.toml to use instead of the nearest one.",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="Template of required sections: decision (default), none, or one "
            "the configuration defines."
        ),
    ] = None,
    disable: Annotated[
        list[str] | None,
        typer.Option("--disable", help="Switch a rule off (repeat for more)."),
    ] = None,
) -> None:
    """Check Markdown documents: statistics, clear prose, sections and length."""
    fmt = Format.json if as_json else output
    if config_file is not None and not config_file.is_file():
        fail(f"--config {config_file}: no such file")
    cache: dict[Path, doc_config.CheckConfig] = {}
    checked: list[tuple[str, Report]] = []
    problems: list[str] = []
    for name in files:
        try:
            shown, text = _read(name)
            cfg = _config_for(None if name == "-" else Path(name), config_file, cache)
            if template is not None:
                cfg = cfg.with_template(template)
            if disable:
                cfg = cfg.with_disabled(disable)
            checked.append((shown, check_document(text, cfg)))
        except doc_config.ConfigError as exc:
            # A bad configuration is the same for every file: stop at once.
            fail(exc.message)
        except MechanismsError as exc:
            problems.append(exc.message)
    _print(fmt, checked, problems)
    if problems:
        raise typer.Exit(EXIT_USAGE)
    if any(not report.passed for _, report in checked):
        raise typer.Exit(EXIT_CHECK_FAILED)


def _print(fmt: Format, checked: list[tuple[str, Report]], problems: list[str]) -> None:
    for problem in problems:
        errors.print(f"[bold red]error:[/] {escape(problem)}")
    if fmt is Format.json:
        data = {
            "passed": not problems and all(r.passed for _, r in checked),
            "files": [{"path": name, **report.to_dict()} for name, report in checked],
            "errors": problems,
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt is Format.sarif:
        uris = [(Path(name).as_posix() if name != "<stdin>" else "stdin", r) for name, r in checked]
        sys.stdout.write(
            json.dumps(to_sarif(uris, __version__), indent=2, ensure_ascii=False) + "\n"
        )
    elif fmt is Format.github:
        for name, report in checked:
            sys.stdout.write("".join(line + "\n" for line in _github(name, report)))
    else:
        for name, report in checked:
            _print_report(name, report)
        if len(checked) + len(problems) > 1:
            failed = sum(not r.passed for _, r in checked)
            console.print(
                f"\n{len(checked)} checked: [green]{len(checked) - failed} passed[/], "
                f"[red]{failed} failed[/]"
                + (f", [bold red]{len(problems)} not readable[/]" if problems else "")
            )


def _print_report(name: str, report: Report) -> None:
    verdict = "[green]passed[/]" if report.passed else "[bold red]failed[/]"
    console.print(f"\n[bold]{escape(name)}[/] {verdict}")
    for f in report.findings:
        style = KIND_STYLES.get(f.kind, "white")
        quoted = f" “{escape(f.text[:80])}”" if f.text else ""
        where = f"{f.line}:{f.column}"
        console.print(
            f"  [dim]{where:<8}[/] [{SEVERITY_STYLES[f.severity]}]{f.severity:<10}[/] "
            f"[{style}]{f.rule}[/]{quoted}\n"
            f"           {escape(f.message)} [dim]→ {escape(f.suggestion)}[/]"
        )
    for note in report.notes:
        console.print(f"  [dim]note: {escape(note)}[/]")
    console.print(_stats_table(report))
    if report.sections:
        sections = Table(title="Sections", title_justify="left")
        for column in ("section", "heading", "words", "status"):
            sections.add_column(column)
        for s in report.sections:
            status = "[green]ok[/]" if s.ok else f"[red]{escape('; '.join(s.problems))}[/]"
            sections.add_row(s.title, escape(s.heading or "—"), str(s.words), status)
        console.print(sections)
    for failure in report.failures:
        console.print(f"  [bold red]✗[/] {escape(failure.check)}: {escape(failure.message)}")


def _stats_table(report: Report) -> Table:
    s = report.stats
    table = Table(title="Statistics", title_justify="left", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("Words", f"{s.words:,}"),
        ("Sentences", f"{s.sentences:,}"),
        ("Paragraphs", f"{s.paragraphs:,}"),
        ("Words per sentence", f"{s.words_per_sentence:.1f}"),
        ("Syllables per word", f"{s.syllables_per_word:.2f}"),
        ("Sentences per paragraph", f"{s.sentences_per_paragraph:.1f}"),
        ("Passive sentences", f"{s.passive_percent:.0f} % ({s.passive_sentences})"),
        ("Flesch Reading Ease", f"{s.flesch_reading_ease:.1f}"),
        ("Flesch–Kincaid grade", f"{s.flesch_kincaid_grade:.1f}"),
        ("Gunning Fog", f"{s.gunning_fog:.1f}"),
        ("SMOG", f"{s.smog:.1f}"),
        ("Coleman–Liau", f"{s.coleman_liau:.1f}"),
        ("Automated Readability Index", f"{s.automated_readability_index:.1f}"),
        ("Dale–Chall", f"{s.dale_chall:.1f}"),
        ("Reading time", f"{s.reading_minutes:.1f} min (1,700 words in 15 min)"),
        ("Pages", f"{s.pages:.1f} at {s.words_per_page} words a page ({s.length}; target 2–3)"),
    ]
    for measure, value in rows:
        table.add_row(measure, value)
    return table


@app.command("rules")
def list_rules(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """The rules `mech doc check` applies, by the names configuration uses."""
    listed = [
        {
            "id": r.id,
            "title": r.title,
            "severity": r.severity,
            "why": r.why,
            "suggestion": r.suggestion,
            "word_list": r.id in rules.LIST_RULES,
        }
        for r in rules.RULES.values()
    ]
    if as_json:
        sys.stdout.write(json.dumps(listed, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title="Rules")
    for column in ("rule", "severity", "what it finds"):
        table.add_column(column)
    for r in listed:
        table.add_row(r["id"], r["severity"], r["title"])
    console.print(table)


# The registry's commands need the database: loaded only when one of them is asked for.
join_commands_lazily(app, "mechanisms.docs.cli_registry")
