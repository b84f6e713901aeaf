"""Protected changes to block windows and pipelines (issue #14): the service every path calls.

``guarded`` takes a proposed change and the verdict of ``protection.py`` on it: a free change is
applied at once; a protected one needs a human leader of the owning team (or above), with the
credential's scope applied, citing an open ops ticket; one that lifts a block in force now is
stored as a request that a second human leader approves under the break-glass two-person rule
(``approvals.py``, one approver besides the requester). The approval applies it in the same
transaction, after checking that the subject is still as it was when asked. Every step is on
the timeline of each pipeline the change touches, in the audit trail, as an event, and noted on
the ticket it cites."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, require_team_role
from mechanisms.deploys import access, approvals, protection
from mechanisms.deploys.approvals import Status, Target
from mechanisms.deploys.tables import ProtectedChange, ProtectedChangeDecision
from mechanisms.ops import tickets as ops_tickets

PENDING, APPLIED, DENIED, EXPIRED, INVALIDATED = (
    "pending",
    "applied",
    "denied",
    "expired",
    "invalidated",
)
MAX_TEXT = 2000
# One approver besides the requester, who is a leader already: together the two leaders the
# two-person rule asks for.
SECOND_LEADERS = 1


def digest_of(value: Any) -> str:
    """A stable name for a JSON value: what was asked, what was approved, what the subject was."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Proposed:
    """A change as a path proposes it: what it changes, whose it is, and where it shows."""

    kind: str  # window_update | window_delete | pipeline_set
    subject: str  # a window's uid, or a service key
    team_id: int
    services: tuple[str, ...]  # the timelines it shows on, the first one lists it
    proposal: dict[str, Any]
    base: dict[str, Any]  # the subject's state now

    @property
    def digest(self) -> str:
        return digest_of({"kind": self.kind, "subject": self.subject, "proposal": self.proposal})


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, details={"field": field})


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > MAX_TEXT:
        raise _invalid(field, f"a non-empty text up to {MAX_TEXT} characters is required")
    return value.strip()


def _ticket_id(ctx: Ctx, reference: Any) -> int:
    """The open ops ticket a protected change cites, by id (ops' service, not its tables)."""
    if reference is None:
        raise _invalid("ticket", "a protected change cites an open ops ticket", "ticket_required")
    from mechanisms.deploys.breakglass import _TICKET_REF  # breakglass imports pipelines

    if not isinstance(reference, str) or not (match := _TICKET_REF.match(reference.strip())):
        raise _invalid("ticket", "an ops ticket number, e.g. 42 or #42")
    try:
        ticket = ops_tickets.get(ctx, int(match.group(1)))
    except NotFound:
        raise _invalid("ticket", f"no ops ticket {reference}", "unknown_ticket") from None
    if ticket.state == "resolved":
        raise _invalid("ticket", f"ticket {ticket.id} is resolved", "ticket_resolved")
    return ticket.id


def _require_leader(ctx: Ctx, change: Proposed, verdict: protection.Verdict) -> None:
    details = {"protection": verdict.to_dict(), "needed_role": Role.LEADER.label}
    what = "; ".join(verdict.reasons)
    if not ctx.principal.is_human:
        raise Forbidden(
            f"{what}: a protected change is made by a person, not a bot, machine token or the "
            "local operator",
            code="not_human",
            details=details,
        )
    try:
        require_team_role(ctx, change.team_id, Role.LEADER)
    except Forbidden as refused:
        raise Forbidden(
            f"{what}: a protected change; {refused.message}",
            code="protected_change",
            details=details,
        ) from None


def _note_ticket(ctx: Ctx, ticket_id: int, text: str) -> None:
    # The ticket shows the change it justified; ops decides who may write on it.
    ops_tickets.comment(ctx, ticket_id, text)


def _history(
    ctx: Ctx, services: tuple[str, ...] | list[str], kind: str, object_id: Any, details: dict
) -> None:
    for i, service in enumerate(services):
        access.record(
            ctx,
            kind,
            service,
            object_type="deploys_protected_change",
            object_id=object_id,
            details=details,
            event=i == 0,
        )


def guarded(
    ctx: Ctx,
    change: Proposed,
    verdict: protection.Verdict,
    apply: Callable[[], Any],
    *,
    ticket: str | None,
    reason: str | None,
) -> Any:
    """Apply ``change`` if the principal may make it alone, else store it for a second
    leader and return the pending ``ProtectedChange`` instead of ``apply``'s result."""
    if not verdict.protected:
        return apply()
    _require_leader(ctx, change, verdict)
    ticket_id = _ticket_id(ctx, ticket)
    why = _text(reason, "reason")
    summary = {
        "what": change.kind,
        "subject": change.subject,
        "protection": verdict.to_dict(),
        "ticket": ticket_id,
        "reason": why,
    }
    if verdict.level is protection.Level.LEADER:
        result = apply()
        _history(
            ctx,
            change.services,
            "protected_change_applied",
            change.subject,
            {**summary, "by": ctx.principal.actor, "leaders": [ctx.principal.username]},
        )
        _note_ticket(ctx, ticket_id, f"protected change applied: {_describe(change, verdict)}")
        return result
    return _request(ctx, change, verdict, ticket_id, why, summary)


def _describe(change: Proposed, verdict: protection.Verdict) -> str:
    return f"{change.kind} {change.subject} ({'; '.join(verdict.reasons)})"


def _request(
    ctx: Ctx,
    change: Proposed,
    verdict: protection.Verdict,
    ticket_id: int,
    why: str,
    summary: dict[str, Any],
) -> ProtectedChange:
    row = ProtectedChange(
        kind=change.kind,
        subject=change.subject,
        service_key=change.services[0],
        services=list(change.services),
        team_id=change.team_id,
        proposal=change.proposal,
        digest=change.digest,
        base_digest=digest_of(change.base),
        protection=verdict.to_dict(),
        requester=access.actor(ctx).id,
        reason=why,
        ticket_id=ticket_id,
        status=PENDING,
        requested_at=ctx.now,
        expires_at=ctx.now + approvals.DEFAULT_REQUEST_TTL,
        outcome="",
        updated_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    _history(
        ctx,
        change.services,
        "protected_change_requested",
        row.id,
        {**summary, "change": row.id, "requester": row.requester, "digest": row.digest},
    )
    _note_ticket(
        ctx,
        ticket_id,
        f"protected change {row.id} requested, waiting for a second leader: "
        f"{_describe(change, verdict)}",
    )
    return row


# --- the request under the two-person rule ---------------------------------------------------


def _decisions(ctx: Ctx, change_id: int) -> list[ProtectedChangeDecision]:
    return list(
        ctx.session.execute(
            select(ProtectedChangeDecision)
            .where(ProtectedChangeDecision.change_id == change_id)
            .order_by(ProtectedChangeDecision.at, ProtectedChangeDecision.id)
        ).scalars()
    )


def _target(row: ProtectedChange, digest: str | None = None) -> Target:
    return Target(row.service_key, row.kind, digest or row.digest)


def to_domain(ctx: Ctx, row: ProtectedChange) -> approvals.Request:
    """The request as the break-glass domain sees it: the target is the exact proposal."""
    decisions = _decisions(ctx, row.id)
    denial = next((d for d in decisions if d.kind == "deny"), None)
    return approvals.Request(
        id=str(row.id),
        target=_target(row),
        requester=approvals.Principal(row.requester),
        version_author=None,
        org="",
        reason=row.reason,
        ticket=approvals.Ticket(str(row.ticket_id), ""),
        requested_at=row.requested_at,
        request_ttl=row.expires_at - row.requested_at,
        approvals=tuple(
            approvals.Approval(approvals.Principal(d.actor, d.human), _target(row, d.digest), d.at)
            for d in decisions
            if d.kind == "approve"
        ),
        denied_by=denial.actor if denial else None,
        denied_at=denial.at if denial else None,
        denial_reason=denial.comment if denial else "",
        last_event_at=row.updated_at,
        required_approvers=SECOND_LEADERS,
    )


def status(ctx: Ctx, row: ProtectedChange, at: datetime | None = None) -> str:
    if row.status != PENDING:
        return row.status
    leaders = access.leaders(ctx, row.team_id)
    found = approvals.status(to_domain(ctx, row), at or ctx.now, leaders)
    return EXPIRED if found is Status.EXPIRED else row.status


def describe(ctx: Ctx, row: ProtectedChange) -> dict[str, Any]:
    decisions = _decisions(ctx, row.id)
    return {
        "id": row.id,
        "status": status(ctx, row),
        "kind": row.kind,
        "subject": row.subject,
        "services": list(row.services),
        "proposal": row.proposal,
        "digest": row.digest,
        "protection": row.protection,
        "requester": row.requester,
        "reason": row.reason,
        "ticket": row.ticket_id,
        "requested_at": row.requested_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "approvals": [d.actor for d in decisions if d.kind == "approve"],
        "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "outcome": row.outcome,
    }


def get(ctx: Ctx, change_id: int) -> ProtectedChange:
    require_site_role(ctx, Role.VIEWER)
    return access.load(ctx, ProtectedChange, change_id, "protected change")


def list_changes(
    ctx: Ctx, service: str | None = None, open_only: bool = False
) -> list[ProtectedChange]:
    require_site_role(ctx, Role.VIEWER)
    query = select(ProtectedChange).order_by(ProtectedChange.id.desc()).limit(500)
    if service is not None:
        query = query.where(ProtectedChange.service_key == service)
    if open_only:
        query = query.where(ProtectedChange.status == PENDING)
    return list(ctx.session.execute(query).scalars())


def _locked(ctx: Ctx, change_id: int) -> ProtectedChange:
    return access.load(ctx, ProtectedChange, change_id, "protected change", lock=True)


def _decide(ctx: Ctx, change_id: int, comment: Any) -> tuple[ProtectedChange, frozenset[str]]:
    require_site_role(ctx, Role.ENGINEER)
    row = _locked(ctx, change_id)
    require_team_role(ctx, row.team_id, Role.LEADER)
    if not isinstance(comment, str) or "\x00" in comment or len(comment) > MAX_TEXT:
        raise _invalid("comment", f"text up to {MAX_TEXT} characters")
    if row.status != PENDING:
        raise Conflict(
            f"the protected change is {row.status}",
            code="request_closed",
            details={"status": row.status},
        )
    return row, access.leaders(ctx, row.team_id)


def _close(ctx: Ctx, row: ProtectedChange, status_now: str, outcome: str) -> None:
    row.status, row.outcome = status_now, outcome
    row.decided_at, row.decided_by = ctx.now, ctx.principal.actor
    row.updated_at = ctx.now
    flag_modified(row, "updated_at")
    ctx.session.flush()


def _record_decision(ctx: Ctx, row: ProtectedChange, kind: str, digest: str, comment: str) -> None:
    who = access.actor(ctx)
    ctx.session.add(
        ProtectedChangeDecision(
            change_id=row.id,
            kind=kind,
            actor=who.id,
            human=who.human,
            digest=digest,
            comment=comment.strip(),
            at=ctx.now,
        )
    )
    row.updated_at = ctx.now
    flag_modified(row, "updated_at")
    ctx.session.flush()


def approve(ctx: Ctx, change_id: int, *, digest: str, comment: str = "") -> ProtectedChange:
    """A second leader approves exactly the proposal shown (its digest); the change is then
    applied at once, if its subject is still as it was when asked."""
    row, leaders = _decide(ctx, change_id, comment)
    updated = approvals.approve(
        to_domain(ctx, row), access.actor(ctx), _target(row, digest), ctx.now, leaders
    )
    _record_decision(ctx, row, "approve", digest, comment)
    details = {"change": row.id, "by": ctx.principal.actor, "ticket": row.ticket_id}
    _history(ctx, row.services, "protected_change_approved", row.id, details)
    granted = approvals.grant(updated, ctx.now, leaders)
    if granted is None:
        return row
    names = [row.requester, *granted.approvers]
    if row.requester not in leaders:
        _refuse(ctx, row, f"{row.requester} is no longer a leader", names)
        return row
    from mechanisms.deploys import pipelines, windows  # they call this module

    apply = windows.apply_change if row.kind.startswith("window") else pipelines.apply_change
    problem = apply(ctx, row)
    if problem:
        _refuse(ctx, row, problem, names)
        return row
    _close(ctx, row, APPLIED, "applied")
    _history(
        ctx,
        row.services,
        "protected_change_applied",
        row.id,
        {
            "change": row.id,
            "what": row.kind,
            "subject": row.subject,
            "protection": row.protection,
            "requester": row.requester,
            "leaders": names,
            "ticket": row.ticket_id,
            "reason": row.reason,
        },
    )
    _note_ticket(
        ctx, row.ticket_id, f"protected change {row.id} applied, approved by {', '.join(names)}"
    )
    return row


def _refuse(ctx: Ctx, row: ProtectedChange, why: str, names: list[str]) -> None:
    _close(ctx, row, INVALIDATED, why)
    _history(
        ctx,
        row.services,
        "protected_change_refused",
        row.id,
        {"change": row.id, "why": why, "leaders": names, "ticket": row.ticket_id},
    )


def unchanged(row: ProtectedChange, current: dict[str, Any]) -> str | None:
    """None when the subject is as it was when the change was asked, else why not."""
    if digest_of(current) != row.base_digest:
        return f"{row.subject} changed since the request; ask again"
    return None


def deny(ctx: Ctx, change_id: int, reason: str = "") -> ProtectedChange:
    """A leader's veto: the change is closed for good, nothing applied."""
    row, leaders = _decide(ctx, change_id, reason)
    approvals.deny(to_domain(ctx, row), access.actor(ctx), ctx.now, leaders, reason)
    _record_decision(ctx, row, "deny", row.digest, reason)
    _close(ctx, row, DENIED, reason.strip())
    _history(
        ctx,
        row.services,
        "protected_change_denied",
        row.id,
        {"change": row.id, "by": ctx.principal.actor, "reason": reason.strip()},
    )
    return row


# --- expiry ----------------------------------------------------------------------------------


def due_expiries(session: Any, now: datetime, limit: int) -> list[int]:
    return list(
        session.execute(
            select(ProtectedChange.id)
            .where(ProtectedChange.status == PENDING, ProtectedChange.expires_at <= now)
            .limit(limit)
        ).scalars()
    )


def expire(ctx: Ctx, change_id: int) -> None:
    """The worker's job: a request no second leader approved in time is closed."""
    row = _locked(ctx, change_id)
    if row.status != PENDING or status(ctx, row) != EXPIRED:
        return
    _close(ctx, row, EXPIRED, "no second leader approved in time")
    _history(ctx, row.services, "protected_change_expired", row.id, {"change": row.id})
