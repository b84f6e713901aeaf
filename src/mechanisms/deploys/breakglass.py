"""Break-glass: one exact promotion through a block window under the two-person rule.

Each call loads the request row under a row lock (``FOR UPDATE``; SQLite serialises writers
with ``BEGIN IMMEDIATE``), rebuilds the domain ``Request`` from its decisions, applies one
transition of ``approvals.py``, and writes the decision, the derived status and the history
in the same transaction. The lock makes two approvals that arrive at the same instant
happen one after the other, so the second sees the first and the grant is decided once;
the ``version`` column refuses a write made from a stale read all the same.

The leaders who count are read on every call (people holding leader or admin in the owning
team or above), so a demoted leader stops counting at once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound, StaleState
from mechanisms.core.identity import Role
from mechanisms.core.permissions import (
    require_site_role,
    require_team_role,
    team_lineage,
    tenancy,
    visible_slugs_filter,
)
from mechanisms.deploys import access, approvals, pipelines
from mechanisms.deploys.approvals import Status, Target
from mechanisms.deploys.tables import BreakGlassDecision, BreakGlassRequest, ReviewItem, Version
from mechanisms.ops import alarms as ops_alarms
from mechanisms.ops import tickets as ops_tickets

_TICKET_REF = re.compile(r"^(?:#|T-?)?(\d{1,12})$", re.IGNORECASE)
OPEN_STATUSES = (Status.PENDING.value, Status.GRANTED.value)
# The timeline and event kind of each decision, named like every other deploys kind: what
# happened, in the past tense.
DECISION_KINDS = {
    "approve": "breakglass_approved",
    "revoke": "breakglass_approval_revoked",
    "deny": "breakglass_denied",
}


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, details={"field": field})


# --- loading ------------------------------------------------------------------------


def _decisions(ctx: Ctx, request_id: int) -> list[BreakGlassDecision]:
    return list(
        ctx.session.execute(
            select(BreakGlassDecision)
            .where(BreakGlassDecision.request_id == request_id)
            .order_by(BreakGlassDecision.at, BreakGlassDecision.id)
        ).scalars()
    )


def decisions(ctx: Ctx, request_id: int) -> list[BreakGlassDecision]:
    """Every approval (revoked ones too) and denial of a request, oldest first."""
    get(ctx, request_id)
    return _decisions(ctx, request_id)


def to_target(row: BreakGlassRequest) -> Target:
    return Target(row.service_key, row.stage, row.digest)


def to_domain(ctx: Ctx, row: BreakGlassRequest) -> approvals.Request:
    decisions = _decisions(ctx, row.id)
    return approvals.Request(
        id=str(row.id),
        target=to_target(row),
        requester=approvals.Principal(row.requester),
        version_author=row.version_author,
        org=row.org,
        reason=row.reason,
        ticket=approvals.Ticket(row.ticket_ref, row.ticket_severity),
        requested_at=row.requested_at,
        drill=row.drill,
        request_ttl=row.expires_at - row.requested_at,
        grant_ttl=timedelta(seconds=row.grant_ttl_seconds),
        approvals=tuple(
            approvals.Approval(
                approvals.Principal(d.actor, d.human, d.leader_scope),
                Target(d.service_key, d.stage, d.digest),
                d.at,
                d.revoked_at,
            )
            for d in decisions
            if d.kind == "approve"
        ),
        denied_by=row.denied_by,
        denied_at=row.denied_at,
        denial_reason=row.denial_reason,
        invalidated_at=row.invalidated_at,
        invalidated_by_digest=row.invalidated_by_digest,
        used_at=row.used_at,
        last_event_at=row.updated_at,
        granted_at=row.granted_at,
    )


def _locked(ctx: Ctx, request_id: int) -> BreakGlassRequest:
    row = access.load(ctx, BreakGlassRequest, request_id, "break-glass request", lock=True)
    return _of_caller_org(ctx, row)


def _of_caller_org(ctx: Ctx, row: BreakGlassRequest) -> BreakGlassRequest:
    """Another organisation's request is not found (issue #14, item 7)."""
    if not tenancy(ctx).sees_team_slug(row.org):
        raise NotFound(f"break-glass request {row.id} not found", details={"field": "id"})
    return row


def _owner_team(ctx: Ctx, row: BreakGlassRequest) -> int:
    return access.owner(ctx, row.service_key).team_id


def _sync(
    ctx: Ctx,
    row: BreakGlassRequest,
    request: approvals.Request,
    leaders: frozenset[str],
    extra: dict[str, Any] | None = None,
    *,
    told: str | None = None,
) -> str:
    """Store what the domain derives now; write the history of a change of status, unless
    the decision that caused it already told it (``told``: a denial is one entry, not two)."""
    before = row.status
    now_status = approvals.status(request, ctx.now, leaders)
    held = approvals.grant(request, ctx.now, leaders)
    row.status = now_status.value
    row.used_at = request.used_at
    row.denied_by, row.denied_at, row.denial_reason = (
        request.denied_by,
        request.denied_at,
        request.denial_reason,
    )
    row.invalidated_at, row.invalidated_by_digest = (
        request.invalidated_at,
        request.invalidated_by_digest,
    )
    if held is not None:
        row.granted_at, row.grant_expires_at = held.granted_at, held.expires_at
    row.updated_at = max(row.updated_at, ctx.now)
    ctx.session.flush()
    if before != row.status:
        kind = {
            Status.GRANTED.value: "breakglass_granted",
            Status.PENDING.value: "breakglass_grant_withdrawn",
        }.get(row.status, f"breakglass_{row.status}")
        if kind == told:
            return row.status
        _history(
            ctx,
            row,
            kind,
            {"from": before, "to": row.status, "leaders": sorted(leaders), **(extra or {})},
        )
    return row.status


def _history(ctx: Ctx, row: BreakGlassRequest, kind: str, details: dict[str, Any]) -> None:
    access.record(
        ctx,
        kind,
        row.service_key,
        stage=row.stage,
        digest=row.digest,
        object_type="deploys_breakglass",
        object_id=row.id,
        details={"request": row.id, "drill": row.drill, "org": row.org, **details},
    )


def describe(ctx: Ctx, row: BreakGlassRequest) -> dict[str, Any]:
    """What an approver sees: the exact promotion, ticket, reason and where the rule stands."""
    leaders = access.leaders(ctx, _owner_team(ctx, row))
    request = to_domain(ctx, row)
    found = approvals.describe(request, ctx.now, leaders)
    review = ctx.session.execute(
        select(ReviewItem).where(ReviewItem.request_id == row.id)
    ).scalar_one_or_none()
    found["id"] = row.id
    found["version_author"] = row.version_author
    found["denial_lifted_by"] = row.denial_lifted_by
    found["denial_lifted_at"] = row.denial_lifted_at.isoformat() if row.denial_lifted_at else None
    found["used_at"] = row.used_at.isoformat() if row.used_at else None
    found["review"] = review_snapshot(review) if review else None
    found["your_approval"] = approvals.standing(request, ctx.principal.username, leaders)
    return found


# --- services -----------------------------------------------------------------------


def _ticket(ctx: Ctx, reference: str, owner: access.Owner) -> Any:
    """The open SEV1/SEV2 ops ticket ``reference`` names, if it justifies breaking glass on
    ``owner``'s service: one of the service, of its owning team, or of a team above it up to
    the organisation (a ticket of the organisation itself is an org-wide incident)."""
    if not isinstance(reference, str) or not (match := _TICKET_REF.match(reference.strip())):
        raise _invalid("ticket", "an ops ticket number, e.g. 42 or #42")
    try:
        ticket = ops_tickets.get(ctx, int(match.group(1)))
    except NotFound:
        raise _invalid("ticket", f"no ops ticket {reference}", "unknown_ticket") from None
    if team_lineage(ctx, ticket.owner_team_id)[-1] != owner.org_id:
        # Said as "no such ticket": another organisation's tickets are none of this one's.
        raise _invalid("ticket", f"no ops ticket {reference}", "unknown_ticket")
    if ticket.state == "resolved":
        raise _invalid("ticket", f"ticket {ticket.id} is resolved", "ticket_resolved")
    severity = f"SEV{ticket.severity}"
    if severity not in approvals.SEVERITIES:
        raise _invalid(
            "ticket",
            f"break-glass needs a SEV1 or SEV2 ticket; {ticket.id} is {severity}",
            "ticket_severity",
        )
    service_id = ops_alarms.get_service(ctx, owner.service).id
    if ticket.service_id != service_id and ticket.owner_team_id not in team_lineage(
        ctx, owner.team_id
    ):
        raise _invalid(
            "ticket",
            f"ticket {ticket.id} is another team's incident; cite one of {owner.service}, "
            f"of team {owner.team}, or an incident of {owner.org}",
            "ticket_unrelated",
        )
    return ticket


def _require_known_author(found: Version, owner: access.Owner) -> None:
    if found.author_id is None:
        raise Conflict(
            f"{found.digest} has no known author, so nobody can tell who may not approve it; "
            f"an engineer of {owner.team} names the author first "
            "(mech deploy versions name-author)",
            code="author_unknown",
            details={"field": "version", "digest": found.digest},
        )


def _standing_denial(ctx: Ctx, service: str, digest: str, requester: str) -> None:
    """A denied request keeps its requester from asking again for the same version (in
    any stage) until a leader lifts the denial: a veto is not undone by asking twice."""
    denied = ctx.session.execute(
        select(BreakGlassRequest)
        .where(
            BreakGlassRequest.service_key == service,
            BreakGlassRequest.digest == digest,
            BreakGlassRequest.requester == requester,
            BreakGlassRequest.denied_at.is_not(None),
            BreakGlassRequest.denial_lifted_at.is_(None),
        )
        .order_by(BreakGlassRequest.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if denied is not None:
        raise Conflict(
            f"break-glass request {denied.id} for {digest} was denied by {denied.denied_by}; "
            "a leader of the owning team must lift that denial before you ask again",
            code="denial_standing",
            details={"request": denied.id, "denied_by": denied.denied_by},
        )


def _minutes(value: int | None, default: timedelta, field: str) -> timedelta:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 24 * 60:
        raise _invalid(field, "1 to 1440 minutes")
    return timedelta(minutes=value)


def request(
    ctx: Ctx,
    service: str,
    stage: str,
    version: str,
    reason: str,
    ticket: str,
    *,
    drill: bool = False,
    request_ttl_minutes: int | None = None,
    grant_ttl_minutes: int | None = None,
) -> BreakGlassRequest:
    """Ask to promote this exact version through a block window. Refused unless the gate's
    only blockers are block windows (a drill may also be asked while the gate is open)."""
    require_site_role(ctx, Role.ENGINEER)
    owner = access.require_engineer(ctx, service)
    decision = pipelines.gate(ctx, service, stage, version, drill=drill)
    codes = {b.code for b in decision.blockers}
    if codes - {"block_window"} or (not drill and not codes):
        raise Conflict(
            "break-glass lifts block windows only; this promotion is "
            + ("open already" if not codes else f"blocked by {', '.join(sorted(codes))}"),
            code="not_only_window",
            details={"blockers": [b.to_dict() for b in decision.blockers]},
        )
    found = pipelines.get_version(ctx, service, version)
    _require_known_author(found, owner)
    requester = access.actor(ctx)
    _standing_denial(ctx, service, found.digest, requester.id)
    cited = _ticket(ctx, ticket, owner)
    held_ticket = approvals.Ticket(str(cited.id), f"SEV{cited.severity}")
    domain = approvals.open_request(
        "new",
        decision.target,
        requester=requester,
        version_author=found.author,
        org=owner.org,
        reason=reason,
        ticket=held_ticket,
        at=ctx.now,
        drill=drill,
        request_ttl=_minutes(
            request_ttl_minutes, approvals.DEFAULT_REQUEST_TTL, "request_ttl_minutes"
        ),
        grant_ttl=_minutes(grant_ttl_minutes, approvals.DEFAULT_GRANT_TTL, "grant_ttl_minutes"),
    )
    if len(domain.reason) > 2000:
        raise _invalid("reason", "at most 2000 characters")
    row = BreakGlassRequest(
        service_key=service,
        stage=decision.target.stage,
        digest=decision.target.digest,
        requester=domain.requester.id,
        version_author=found.author,
        org=owner.org,
        reason=domain.reason,
        ticket_ref=held_ticket.reference,
        ticket_severity=held_ticket.severity,
        drill=drill,
        status=Status.PENDING.value,
        requested_at=ctx.now,
        expires_at=domain.request_expires_at,
        grant_ttl_seconds=int(domain.grant_ttl.total_seconds()),
        updated_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    _history(
        ctx,
        row,
        "breakglass_requested",
        {
            "reason": row.reason,
            "ticket": row.ticket_ref,
            "severity": row.ticket_severity,
            "windows": [b.to_dict() for b in decision.blockers],
        },
    )
    ops_tickets.cite(
        ctx,
        cited,
        f"breakglass_{row.id}",
        {"request": row.id, "service": service, "url": f"/deploys/breakglass/{row.id}"},
        f"cited by break-glass request {row.id} ({service}/{row.stage} {row.digest}) "
        f"from {row.requester}",
    )
    return row


def get(ctx: Ctx, request_id: int) -> BreakGlassRequest:
    require_site_role(ctx, Role.VIEWER)
    return _of_caller_org(
        ctx, access.load(ctx, BreakGlassRequest, request_id, "break-glass request")
    )


def list_requests(
    ctx: Ctx, service: str | None = None, open_only: bool = False
) -> list[BreakGlassRequest]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(BreakGlassRequest)
        .where(visible_slugs_filter(ctx, BreakGlassRequest.org))
        .order_by(BreakGlassRequest.id.desc())
        .limit(500)
    )
    if service is not None:
        query = query.where(BreakGlassRequest.service_key == service)
    if open_only:
        query = query.where(BreakGlassRequest.status.in_(OPEN_STATUSES))
    return list(ctx.session.execute(query).scalars())


def _decide(ctx: Ctx, request_id: int, kind: str, comment: str, apply: Any) -> BreakGlassRequest:
    require_site_role(ctx, Role.ENGINEER)
    row = _locked(ctx, request_id)
    team_id = _owner_team(ctx, row)
    require_team_role(ctx, team_id, Role.ENGINEER)
    if not isinstance(comment, str) or "\x00" in comment or len(comment) > 2000:
        raise _invalid("comment", "text up to 2000 characters")
    leaders = access.leaders(ctx, team_id)
    domain = to_domain(ctx, row)
    # Bring the stored status up to now first (an expiry the job has not written yet).
    _sync(ctx, row, domain, leaders)
    updated = apply(domain, leaders)
    who = access.actor(ctx)
    if kind in ("approve", "deny"):
        # An approval is stored with the promotion the domain recorded it for (what the
        # approver was shown), not copied from the request: the record says what was
        # approved, and a check of the two against each other means something.
        shown = updated.approvals[-1].target if kind == "approve" else to_target(row)
        ctx.session.add(
            BreakGlassDecision(
                request_id=row.id,
                kind=kind,
                actor=who.id,
                human=who.human,
                leader_scope=who.leader_scope,
                service_key=shown.service,
                stage=shown.stage,
                digest=shown.digest,
                comment=comment.strip(),
                at=ctx.now,
            )
        )
    else:
        live = next(
            d
            for d in reversed(_decisions(ctx, row.id))
            if d.kind == "approve" and d.actor == who.id and d.revoked_at is None
        )
        live.revoked_at = ctx.now
    # Every decision writes the row, so the version column refuses a write made from a
    # stale read even if the lock above were ever lost.
    row.updated_at = ctx.now
    flag_modified(row, "updated_at")
    try:
        ctx.session.flush()
    except StaleDataError:
        raise StaleState(
            "the break-glass request changed while this decision was made; try again",
            code="stale_request",
        ) from None
    told = DECISION_KINDS[kind]
    _history(ctx, row, told, {"by": who.id, "comment": comment.strip()})
    _sync(ctx, row, updated, leaders, told=told)
    return row


def approve(
    ctx: Ctx, request_id: int, *, service: str, stage: str, digest: str, comment: str = ""
) -> BreakGlassRequest:
    """Approve exactly the promotion shown (service, stage, digest): an approval of anything
    else is refused, so it can never carry over to another version."""
    who = access.actor(ctx)
    return _decide(
        ctx,
        request_id,
        "approve",
        comment,
        lambda r, leaders: approvals.approve(
            r, who, Target(service, stage, digest), ctx.now, leaders
        ),
    )


def deny(ctx: Ctx, request_id: int, reason: str = "") -> BreakGlassRequest:
    """A leader's veto."""
    who = access.actor(ctx)
    return _decide(
        ctx,
        request_id,
        "deny",
        reason,
        lambda r, leaders: approvals.deny(r, who, ctx.now, leaders, reason),
    )


def lift_denial(ctx: Ctx, request_id: int, reason: str = "") -> BreakGlassRequest:
    """A leader of the owning team (the people who may deny) lets the requester of a denied
    request ask again for that version. The request itself stays denied."""
    require_site_role(ctx, Role.ENGINEER)
    row = _locked(ctx, request_id)
    team_id = _owner_team(ctx, row)
    if not access.actor(ctx).leads(access.leaders(ctx, team_id)):
        raise Forbidden(
            "only a leader of the owning organisation, acting with a leader-scoped "
            "credential, can lift a break-glass denial",
            code="not_a_leader",
        )
    if not isinstance(reason, str) or "\x00" in reason or len(reason) > 2000:
        raise _invalid("reason", "text up to 2000 characters")
    if row.denied_at is None:
        raise Conflict(f"break-glass request {row.id} was not denied", code="not_denied")
    if row.denial_lifted_at is not None:
        raise Conflict(
            f"the denial of break-glass request {row.id} was lifted already",
            code="denial_lifted",
        )
    row.denial_lifted_by, row.denial_lifted_at = ctx.principal.username, ctx.now
    row.updated_at = max(row.updated_at, ctx.now)
    try:
        ctx.session.flush()
    except StaleDataError:
        raise StaleState(
            "the break-glass request changed meanwhile; try again", code="stale_request"
        ) from None
    _history(
        ctx,
        row,
        "breakglass_denial_lifted",
        {"by": row.denial_lifted_by, "denied_by": row.denied_by, "reason": reason.strip()},
    )
    return row


def revoke(ctx: Ctx, request_id: int) -> BreakGlassRequest:
    """Withdraw one's own approval; a grant that needed it falls."""
    who = access.actor(ctx)
    return _decide(
        ctx, request_id, "revoke", "", lambda r, leaders: approvals.revoke(r, who, ctx.now, leaders)
    )


# --- the grant at promotion ---------------------------------------------------------


# The requests still open for one exact promotion, built once: the gate asks on every
# call (together with its other usually-empty reads). Parameters: ``target_params``.
OPEN_REQUESTS = (
    select(BreakGlassRequest)
    .where(
        BreakGlassRequest.service_key == bindparam("service"),
        BreakGlassRequest.stage == bindparam("stage"),
        BreakGlassRequest.digest == bindparam("digest"),
        BreakGlassRequest.drill == bindparam("drill"),
        BreakGlassRequest.status.in_(OPEN_STATUSES),
    )
    .order_by(BreakGlassRequest.id)
)


def target_params(target: Target, drill: bool) -> dict[str, Any]:
    return {
        "service": target.service,
        "stage": target.stage,
        "digest": target.digest,
        "drill": drill,
    }


def grant_for(ctx: Ctx, target: Target, at: datetime, *, drill: bool) -> approvals.Grant | None:
    """The grant that covers this exact promotion at ``at``, derived from live approvals."""
    rows = list(ctx.session.execute(OPEN_REQUESTS, target_params(target, drill)).scalars())
    return grant_among(ctx, rows, at, target.service)


def grant_among(
    ctx: Ctx, rows: list[BreakGlassRequest], at: datetime, service: str
) -> approvals.Grant | None:
    """The first of these open requests that grants at ``at``, judged with the leaders of
    the service's owning team now."""
    if not rows:
        return None
    leaders = access.leaders(ctx, access.owner(ctx, service).team_id)
    for row in rows:
        held = approvals.grant(to_domain(ctx, row), at, leaders)
        if held is not None:
            return held
    return None


def has_grant(ctx: Ctx, target: Target, *, drill: bool) -> bool:
    return grant_for(ctx, target, ctx.now, drill=drill) is not None


def use(ctx: Ctx, target: Target, *, drill: bool) -> int:
    """Spend the grant on this promotion (once), tell the approvers and the org, and open
    the follow-up review."""
    held = grant_for(ctx, target, ctx.now, drill=drill)
    if held is None:
        raise Conflict("no usable break-glass grant for this promotion", code="no_grant")
    row = _locked(ctx, int(held.request_id))
    team_id = _owner_team(ctx, row)
    leaders = access.leaders(ctx, team_id)
    updated, grant = approvals.use(to_domain(ctx, row), target, ctx.now, leaders, drill=drill)
    # The event tells the approvers and the org (webhooks, the next engineer's notifications).
    _sync(ctx, row, updated, leaders, {"approvers": list(grant.approvers), "org": row.org})
    review = ReviewItem(request_id=row.id, service_key=row.service_key, opened_at=ctx.now)
    ctx.session.add(review)
    ctx.session.flush()
    _history(
        ctx,
        row,
        "breakglass_review_opened",
        {"review": review.id, "approvers": list(grant.approvers), "leaders": list(grant.leaders)},
    )
    return row.id


# --- version changes and expiry -----------------------------------------------------


def _invalidate(
    ctx: Ctx, rows: list[BreakGlassRequest], service: str, stage: str, digest: str
) -> None:
    for candidate in rows:
        row = _locked(ctx, candidate.id)
        leaders = access.leaders(ctx, _owner_team(ctx, row))
        updated = approvals.version_changed(
            to_domain(ctx, row), service, stage, digest, ctx.now, leaders
        )
        _sync(ctx, row, updated, leaders)


def candidate_changed(ctx: Ctx, service: str, stage: str | None, digest: str) -> None:
    """``digest`` is now the candidate for ``stage``: open requests for another digest of
    that promotion are invalidated."""
    if stage is None:
        return
    rows = list(
        ctx.session.execute(
            select(BreakGlassRequest).where(
                BreakGlassRequest.service_key == service,
                BreakGlassRequest.stage == stage,
                BreakGlassRequest.digest != digest,
                BreakGlassRequest.status.in_(OPEN_STATUSES),
            )
        ).scalars()
    )
    _invalidate(ctx, rows, service, stage, digest)


def digest_changed(ctx: Ctx, service: str, old: str, new: str) -> None:
    """The artifact behind ``old`` now has digest ``new``: requests for ``old`` fall."""
    rows = list(
        ctx.session.execute(
            select(BreakGlassRequest).where(
                BreakGlassRequest.service_key == service,
                BreakGlassRequest.digest == old,
                BreakGlassRequest.status.in_(OPEN_STATUSES),
            )
        ).scalars()
    )
    for row in rows:
        _invalidate(ctx, [row], service, row.stage, new)


def due_expiries(session: Any, now: datetime, limit: int) -> list[int]:
    return list(
        session.execute(
            select(BreakGlassRequest.id)
            .where(
                (
                    (BreakGlassRequest.status == Status.PENDING.value)
                    & (BreakGlassRequest.expires_at <= now)
                )
                | (
                    (BreakGlassRequest.status == Status.GRANTED.value)
                    & (BreakGlassRequest.grant_expires_at <= now)
                )
            )
            .limit(limit)
        ).scalars()
    )


def expire(ctx: Ctx, request_id: int) -> None:
    """The worker's job: write the expiry the domain already derives."""
    row = _locked(ctx, request_id)
    leaders = access.leaders(ctx, _owner_team(ctx, row))
    _sync(ctx, row, to_domain(ctx, row), leaders)


# --- follow-up reviews --------------------------------------------------------------


def review_snapshot(row: ReviewItem) -> dict[str, Any]:
    return {
        "id": row.id,
        "request": row.request_id,
        "service": row.service_key,
        "opened_at": row.opened_at.isoformat(),
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
        "closed_by": row.closed_by,
        "what_happened": row.what_happened,
        "why": row.why,
    }


def list_reviews(ctx: Ctx, open_only: bool = True) -> list[ReviewItem]:
    require_site_role(ctx, Role.VIEWER)
    query = (
        select(ReviewItem)
        .where(ReviewItem.service_key.in_(access.visible_services(ctx)))
        .order_by(ReviewItem.id.desc())
        .limit(500)
    )
    if open_only:
        query = query.where(ReviewItem.closed_at.is_(None))
    return list(ctx.session.execute(query).scalars())


def close_review(ctx: Ctx, review_id: int, what_happened: str, why: str) -> ReviewItem:
    """Record what happened and why; the review is closed once both are written."""
    require_site_role(ctx, Role.ENGINEER)
    row = ctx.session.get(ReviewItem, review_id)
    if row is None:
        raise NotFound(f"review {review_id} not found", details={"field": "id"})
    access.require_engineer(ctx, row.service_key)
    if row.closed_at is not None:
        raise Conflict(f"review {review_id} is closed already", code="review_closed")
    for field, value in (("what_happened", what_happened), ("why", why)):
        if not isinstance(value, str) or not value.strip() or "\x00" in value or len(value) > 2000:
            raise _invalid(field, "a non-empty text up to 2,000 characters is required")
    row.what_happened, row.why = what_happened.strip(), why.strip()
    row.closed_at, row.closed_by = ctx.now, ctx.principal.actor
    ctx.session.flush()
    request_row = ctx.session.get(BreakGlassRequest, row.request_id)
    assert request_row is not None
    _history(
        ctx,
        request_row,
        "breakglass_review_closed",
        {"review": row.id, "what_happened": row.what_happened, "why": row.why},
    )
    return row
