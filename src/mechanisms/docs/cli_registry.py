"""`mech doc …` for the registry and reviews: list, show, new, upload, sync, submit, comment,
answer, review, decide, supersede, search, load, queue, diff.

Exit codes: 0 done, 1 a check failed (a decision refused: every reason is printed), 2 a
usage or input error. ``--json`` everywhere. Commands act as the local operator, or as
``MECH_TOKEN``'s user (``--token``): reviews and answers are a person's."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

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
from mechanisms.docs import anchors, lifecycle, reading, registry, reviews
from mechanisms.docs.api_registry import comment_out

# The commands are gathered here and added to `mech doc` by ``register``.
app = typer.Typer()
DocArg = Annotated[str, typer.Argument(help="The doc's slug or id.")]
ListOpt = Annotated[list[str] | None, typer.Option(help="Repeat for more than one.")]
MAX_SYNC_FILES = 2000


def _doc(ctx: Any, doc: Any) -> dict[str, Any]:
    return registry.snapshot(ctx, doc)


def _print_docs(rows: list[dict[str, Any]]) -> None:
    table(
        "Decision docs",
        ["slug", "status", "title", "author", "version", "tags"],
        [
            [r["slug"], r["status"], r["title"], r["author"], r["version"], ", ".join(r["tags"])]
            for r in rows
        ],
    )


@app.command("list")
def list_docs(
    status: Annotated[str | None, typer.Option(help="draft, in_review, accepted, …")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    author: Annotated[str | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option("--q", help="Full-text search.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The registry, filtered; ranked by relevance with --q."""
    with acting(token) as ctx:
        found = registry.list_docs(ctx, registry.Filters(status, tag, author, q, limit))
        rows = [{**_doc(ctx, d), "score": s} for d, s in found]
    emit(rows, as_json, lambda: _print_docs(rows))


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help='Words, "phrases", -excluded.')],
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Full-text search, most relevant first."""
    list_docs(None, None, None, query, limit, token, as_json)


@app.command("show")
def show(
    doc: DocArg,
    version: Annotated[int | None, typer.Option(min=1)] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A doc: where it stands, its text, its threads and what blocks its decision."""
    with acting(token) as ctx:
        row = registry.get(ctx, doc)
        data = {
            **_doc(ctx, row),
            "body": registry.version(ctx, row, version).body,
            "blockers": [b.as_dict() for b in reviews.blockers(ctx, row)],
            "comments": [
                {
                    **comment_out(t.root).model_dump(),
                    "replies": [comment_out(r).model_dump() for r in t.replies],
                }
                for t in reviews.threads(reviews.comments(ctx, row.id))
            ],
        }

    def human() -> None:
        console.print(
            f"[bold]{data['title']}[/] ({data['slug']}) — {data['status']}, v{data['version']}"
        )
        console.print(
            f"author {data['author']} · owners {', '.join(data['owners'])} · reviewers {', '.join(data['reviewers']) or '—'}"
        )
        for number, block in enumerate(anchors.blocks(data["body"]), start=1):
            console.print(f"[{number}] {block}\n", markup=False, highlight=False)
        for c in data["comments"]:
            console.print(
                f"#{c['id']} {c['kind']} by {c['author']} [{c['state'] or c['anchor_state']}]: {c['body']}",
                markup=False,
            )
        for b in data["blockers"]:
            console.print(f"  blocks decision: {b['message']}", markup=False)

    emit(data, as_json, human)


def _read_text(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


@app.command("new")
def new(
    title: Annotated[str, typer.Argument()],
    slug: Annotated[str | None, typer.Option()] = None,
    team: Annotated[str | None, typer.Option()] = None,
    template: Annotated[str | None, typer.Option(help="A Markdown template file.")] = None,
    owner: ListOpt = None,
    reviewer: ListOpt = None,
    tag: ListOpt = None,
    link: Annotated[
        list[str] | None, typer.Option(help="kind:ref, e.g. flag:shop/new-checkout")
    ] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new draft from the decision-doc template (or --template)."""
    text = None
    if template:
        try:
            text = _read_text(template).decode("utf-8")
        except UnicodeDecodeError:
            fail(f"{template} is not UTF-8 text")
    links = []
    for item in link or []:
        kind, sep, ref = item.partition(":")
        if not sep:
            fail(f"--link {item!r}: write kind:ref, e.g. deploy:checkout")
        links.append((kind, ref))
    with acting(token) as ctx:
        row = registry.create(
            ctx,
            registry.NewDoc(
                title=title,
                template=text,
                slug=slug,
                team=team,
                owners=owner or [],
                reviewers=reviewer or [],
                tags=tag or [],
                links=links,
            ),
        )
        data = _doc(ctx, row)
    emit(data, as_json, lambda: console.print(f"created {data['slug']} (draft)"))


@app.command("upload")
def upload(
    file: Annotated[str, typer.Argument(help="A Markdown file (UTF-8).")],
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or update the doc a Markdown file names (front matter id, else its path)."""
    raw = _read_text(file)
    with acting(token) as ctx:
        result = registry.upload(ctx, raw, file)
        data = {"outcome": result.outcome, "doc": _doc(ctx, result.doc)}
    emit(data, as_json, lambda: console.print(f"{data['outcome']} {data['doc']['slug']}"))


@app.command("sync")
def sync(
    directory: Annotated[str, typer.Argument(help="A directory of Markdown files.")],
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upsert every *.md under DIR by its stable id (front matter id, else its path relative
    to DIR): all or nothing, and running it again changes nothing."""
    root = Path(directory)
    if not root.is_dir():
        fail(f"{directory} is not a directory")
    paths = sorted(p for p in root.rglob("*.md") if p.is_file())
    if len(paths) > MAX_SYNC_FILES:
        fail(
            f"{directory} holds {len(paths)} Markdown files; sync at most {MAX_SYNC_FILES} at once"
        )
    files = [(p.relative_to(root).as_posix(), _read_text(str(p))) for p in paths]
    with acting(token) as ctx:
        report = registry.sync(ctx, files).as_dict()

    def human() -> None:
        for outcome in ("created", "updated", "unchanged"):
            console.print(f"{outcome}: {len(report[outcome])} {' '.join(report[outcome])}")

    emit(report, as_json, human)


def _transition(action: str, doc: str, token: str | None, as_json: bool) -> None:
    with acting(token) as ctx:
        row = registry.submit(ctx, doc) if action == "submit" else registry.withdraw(ctx, doc)
        data = _doc(ctx, row)
    emit(data, as_json, lambda: console.print(f"{data['slug']} is {data['status']}"))


@app.command("submit")
def submit(doc: DocArg, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Send a draft to review."""
    _transition("submit", doc, token, as_json)


@app.command("withdraw")
def withdraw(doc: DocArg, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Take a doc in review back to draft."""
    _transition("withdraw", doc, token, as_json)


@app.command("comment")
def comment(
    doc: DocArg,
    body: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option(help="question, concern or note")] = "question",
    paragraph: Annotated[int | None, typer.Option(min=1, help="1-based, as shown by show.")] = None,
    reply_to: Annotated[int | None, typer.Option(help="Reply in this comment's thread.")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a question, raise a concern or leave a note (on a paragraph), or reply."""
    with acting(token) as ctx:
        if reply_to is not None:
            row = reviews.reply(ctx, reply_to, body)
        else:
            row = reviews.comment(
                ctx, doc, kind, body, None if paragraph is None else paragraph - 1
            )
        data = comment_out(row).model_dump()
    emit(data, as_json, lambda: console.print(f"comment {data['id']} added"))


@app.command("answer")
def answer(
    question: Annotated[int, typer.Argument(help="The question's id.")],
    body: Annotated[str, typer.Argument()],
    resolve: Annotated[bool, typer.Option(help="Also resolve it.")] = False,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question on your doc (as its author or an owner)."""
    with acting(token) as ctx:
        row = reviews.answer(ctx, question, body)
        if resolve:
            reviews.resolve(ctx, question)
        data = comment_out(row).model_dump()
    emit(data, as_json, lambda: console.print(f"question {question} answered"))


@app.command("review")
def review(
    doc: DocArg,
    no_questions: Annotated[
        bool, typer.Option("--no-questions", help="Record that you have none.")
    ] = False,
    note: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record your review: with the questions you asked, or --no-questions."""
    with acting(token) as ctx:
        row = reviews.review(ctx, doc, no_questions=no_questions, note=note)
        data = {
            "id": row.id,
            "reviewer": row.reviewer,
            "version": row.version_number,
            "no_questions": row.no_questions,
        }
    emit(data, as_json, lambda: console.print(f"review recorded for version {data['version']}"))


@app.command("decide")
def decide(
    doc: DocArg,
    outcome: Annotated[str, typer.Argument(help="accepted or rejected")],
    door: Annotated[str | None, typer.Option(help="one_way or two_way")] = None,
    note: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a doc in review. Exit 1 with every reason when it cannot be decided yet."""
    with acting(token) as ctx:
        row = registry.get(ctx, doc)
        found = reviews.blockers(ctx, row) if row.status == lifecycle.IN_REVIEW else []
        if found:
            data: dict[str, Any] = {"decided": False, "reasons": [b.as_dict() for b in found]}
        else:
            data = {
                "decided": True,
                "doc": _doc(ctx, registry.decide(ctx, doc, outcome, door, note)),
            }

    def human() -> None:
        if data["decided"]:
            console.print(f"{doc} is {data['doc']['status']}")
            return
        console.print(f"[bold red]NOT DECIDED[/] {doc}")
        for reason in data["reasons"]:
            console.print(f"  - {reason['message']}", markup=False)

    emit(data, as_json, human)
    if not data["decided"]:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("supersede")
def supersede(
    doc: DocArg,
    successor: Annotated[str, typer.Argument(help="The doc that replaces it.")],
    note: Annotated[str, typer.Option()] = "",
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark an accepted doc superseded by its successor (linked both ways)."""
    with acting(token) as ctx:
        data = _doc(ctx, registry.supersede(ctx, doc, successor, note))
    emit(data, as_json, lambda: console.print(f"{doc} is superseded by {successor}"))


@app.command("diff")
def diff(
    doc: DocArg,
    old: Annotated[int, typer.Option("--from", min=1)],
    new: Annotated[int | None, typer.Option("--to", min=1)] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The unified diff between two versions (to the current one by default)."""
    with acting(token) as ctx:
        found = registry.diff(ctx, doc, old, new)
    data = {k: found[k] for k in ("doc", "from", "to", "added", "removed", "unified")}
    emit(data, as_json, lambda: console.print(found["unified"], markup=False, highlight=False))


@app.command("queue")
def queue(
    username: Annotated[str | None, typer.Option(help="Default: the token's user.")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Docs waiting for your review and unanswered questions on your docs."""
    with acting(token) as ctx:
        who = username or ctx.principal.username
        found = reviews.queue(ctx, who)
        data = {
            "username": who,
            "to_review": [d.slug for d in found["to_review"]],
            "questions": [
                {"doc": d.slug, **comment_out(c).model_dump()} for c, d in found["questions"]
            ],
        }

    def human() -> None:
        console.print(f"to review: {', '.join(data['to_review']) or 'nothing'}")
        for q in data["questions"]:
            console.print(f"  {q['doc']} #{q['id']} by {q['author']}: {q['body']}", markup=False)

    emit(data, as_json, human)


@app.command("load")
def load(
    username: Annotated[str | None, typer.Argument(help="Default: everyone.")] = None,
    day: Annotated[str | None, typer.Option(help="Any day of the ISO week, YYYY-MM-DD.")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")] = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Docs read and reviewed this ISO week per person, against the 7–9 norm."""
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        fail(f"--day {day!r} is not a date (YYYY-MM-DD)")
    with acting(token) as ctx:
        loads = (
            [reading.load(ctx, username, when, tz)] if username else reading.loads(ctx, when, tz)
        )
        rows = [x.as_dict() for x in loads]
    emit(
        rows,
        as_json,
        lambda: table(
            "Reading load",
            ["person", "week", "docs", "band"],
            [[r["username"], r["week"], r["docs"], r["band"]] for r in rows],
        ),
    )


@app.command("zone")
def zone(
    tz: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin.")],
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count your reading week in this time zone (as MECH_TOKEN's user)."""
    with acting(token) as ctx:
        data = {"username": ctx.principal.username, "tz": reading.set_zone(ctx, tz)}
    emit(data, as_json, lambda: console.print(f"{data['username']} reads in {data['tz']}"))


def register(doc_app: typer.Typer) -> None:
    """Add these commands to the `mech doc` app."""
    doc_app.registered_commands.extend(app.registered_commands)
