"""`mech ops tickets list|show|create|comment|ack|resolve|promote`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mechanisms.core.cli import JsonOpt, emit, fail, operator, table
from mechanisms.core.context import Ctx
from mechanisms.ops import alarms, tickets

app = typer.Typer(help="Tickets: list, show, comment, acknowledge, resolve.", no_args_is_help=True)
TicketId = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The ticket's number.")]


def ticket_row(ctx: Ctx, ticket: Any) -> dict[str, Any]:
    service = next((s.key for s in alarms.list_services(ctx) if s.id == ticket.service_id), None)
    return {
        **tickets.snapshot(ticket),
        "service": service,
        "links": ticket.links,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
    }


def _say(row: dict[str, Any]) -> None:
    typer.echo(f"#{row['id']} SEV{row['severity']} {row['state']}: {row['title']}")


@app.command("list")
def list_tickets(
    state: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    severity: Annotated[int | None, typer.Option(min=1, max=5, help="1 (SEV1) to 5.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Tickets, the most severe first."""
    if state is not None and state not in tickets.STATES:
        fail(f"--state is one of {', '.join(tickets.STATES)}, got {state!r}")
    with operator() as ctx:
        rows = [ticket_row(ctx, t) for t in tickets.list_tickets(ctx, state, severity, limit)]
    emit(
        rows,
        as_json,
        lambda: table(
            "Tickets",
            ["#", "severity", "state", "title", "service", "assignee", "opened (UTC)"],
            [
                [
                    r["id"],
                    f"SEV{r['severity']}",
                    r["state"],
                    r["title"],
                    r["service"],
                    r["assignee"],
                    r["created_at"][:16],
                ]
                for r in rows
            ],
        ),
    )


@app.command("show")
def show(ticket_id: TicketId, as_json: JsonOpt = False) -> None:
    """A ticket and its timeline."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.get(ctx, ticket_id))
        row["timeline"] = [
            {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "text": e.text}
            for e in tickets.timeline(ctx, ticket_id)
        ]

    def human() -> None:
        _say(row)
        for kind, value in row["links"].items():
            typer.echo(f"  {kind}: {value}")
        for e in row["timeline"]:
            typer.echo(
                f"  {e['at'][:16]} {e['actor']} {e['kind']}"
                + (f": {e['text']}" if e["text"] else "")
            )

    emit(row, as_json, human)


@app.command("create")
def create(
    service: Annotated[str, typer.Option(help="The service (key) it is about.")],
    title: Annotated[str, typer.Option()],
    severity: Annotated[int, typer.Option(min=1, max=5)] = 3,
    text: Annotated[str, typer.Option(help="What is known so far.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Cut a ticket by hand."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.create(ctx, service, title, severity, text))
    emit(row, as_json, lambda: _say(row))


@app.command("comment")
def comment(ticket_id: TicketId, text: str, as_json: JsonOpt = False) -> None:
    """Add a comment to the timeline."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.comment(ctx, ticket_id, text))
    emit(row, as_json, lambda: _say(row))


@app.command("ack")
def acknowledge(ticket_id: TicketId, as_json: JsonOpt = False) -> None:
    """Acknowledge an open ticket (stops its page from escalating)."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.acknowledge(ctx, ticket_id))
    emit(row, as_json, lambda: _say(row))


@app.command("resolve")
def resolve(ticket_id: TicketId, text: str, as_json: JsonOpt = False) -> None:
    """Resolve a ticket, saying what fixed it."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.resolve(ctx, ticket_id, text))
    emit(row, as_json, lambda: _say(row))


@app.command("promote")
def promote(ticket_id: TicketId, summary: str, as_json: JsonOpt = False) -> None:
    """Offer a resolved SEV1/SEV2 ticket to the roadmap as an operational finding."""
    with operator() as ctx:
        row = ticket_row(ctx, tickets.promote(ctx, ticket_id, summary))
    emit(row, as_json, lambda: _say(row))
