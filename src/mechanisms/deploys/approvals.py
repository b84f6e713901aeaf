"""Break-glass under the two-person rule, as a pure state machine over a request's events.

A request asks to promote one exact version (service, stage, digest) through a block window,
with a written reason and a SEV1/SEV2 ticket. It is granted once at least two distinct human
approvers have approved that exact target, neither of them the requester nor the version's
author, at least one of them a leader of the owning organisation. Any leader can deny it (a
veto). A request not granted in time expires (default 1 h); a grant is good for one promotion
and expires too (default 4 h). A new digest for the (service, stage) under an open request
invalidates it.

What counts is decided when asked, from the events and the roster of leaders passed in: an
approval that was revoked, or whose approver stopped being the leader the rule relied on, no
longer counts, so a grant can never stand on fewer approvals than the rule asks for. Every
event carries its instant; the caller's clock is never read here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mechanisms.core.errors import Conflict, Forbidden, InvalidInput

DEFAULT_REQUEST_TTL = timedelta(hours=1)
DEFAULT_GRANT_TTL = timedelta(hours=4)
REQUIRED_APPROVERS = 2
SEVERITIES = ("SEV1", "SEV2")


class Status(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    USED = "used"
    DENIED = "denied"
    EXPIRED = "expired"  # not granted in time
    GRANT_EXPIRED = "grant_expired"  # granted, never used in time
    INVALIDATED = "invalidated"  # the version changed under it


OPEN = frozenset({Status.PENDING, Status.GRANTED})


@dataclass(frozen=True)
class Principal:
    """Who acts. ``human`` is False for bots and machine API tokens: they never count.
    ``leader_scope`` is False when the credential acted with is scoped below leader: the
    person's leadership (checked against the roster of leaders when asked) then does not
    count, since authority comes from the credential, not only from the person."""

    id: str
    human: bool = True
    leader_scope: bool = True

    def leads(self, leaders: frozenset[str]) -> bool:
        return self.human and self.leader_scope and self.id in leaders


@dataclass(frozen=True)
class Target:
    """The one promotion a request is about: a version digest into a service's stage."""

    service: str
    stage: str
    digest: str


@dataclass(frozen=True)
class Ticket:
    reference: str
    severity: str


@dataclass(frozen=True)
class Approval:
    approver: Principal
    target: Target
    at: datetime
    revoked_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Grant:
    request_id: str
    target: Target
    granted_at: datetime
    expires_at: datetime
    approvers: tuple[str, ...]
    leaders: tuple[str, ...]
    drill: bool

    def covers(self, target: Target, *, drill: bool) -> bool:
        return self.target == target and self.drill == drill


@dataclass(frozen=True)
class Request:
    id: str
    target: Target
    requester: Principal
    version_author: str | None
    org: str
    reason: str
    ticket: Ticket
    requested_at: datetime
    drill: bool = False
    request_ttl: timedelta = DEFAULT_REQUEST_TTL
    grant_ttl: timedelta = DEFAULT_GRANT_TTL
    approvals: tuple[Approval, ...] = ()
    denied_by: str | None = None
    denied_at: datetime | None = None
    denial_reason: str = ""
    invalidated_at: datetime | None = None
    invalidated_by_digest: str | None = None
    used_at: datetime | None = None
    last_event_at: datetime | None = None
    # When the rule was first met, as recorded then: the grant's clock starts there and never
    # moves, so revoking one approval while a later one still meets the rule cannot push the
    # expiry later, nor can revoking and approving again.
    granted_at: datetime | None = None
    # Break-glass asks two approvers besides the requester; a protected change, whose
    # requester is a leader already, asks one more leader.
    required_approvers: int = REQUIRED_APPROVERS

    @property
    def request_expires_at(self) -> datetime:
        return self.requested_at + self.request_ttl


# ---------------------------------------------------------------------------------------------
# Reading a request's state


def _counting(request: Request, leaders: frozenset[str]) -> list[Approval]:
    """Live approvals that may count, in the order they arrived (one per approver)."""
    excluded = {request.requester.id, request.version_author}
    seen: set[str] = set()
    found = []
    for approval in request.approvals:
        who = approval.approver
        if not approval.live or not who.human or who.id in excluded or who.id in seen:
            continue
        if approval.target != request.target or approval.at >= request.request_expires_at:
            continue
        seen.add(who.id)
        found.append(approval)
    return found


def _rule_met_at(
    request: Request, leaders: frozenset[str]
) -> tuple[datetime, list[Approval]] | None:
    """The instant the two-person rule was first met by the approvals that count now."""
    counting = _counting(request, leaders)
    for n in range(request.required_approvers, len(counting) + 1):
        prefix = counting[:n]
        if any(a.approver.leads(leaders) for a in prefix):
            return prefix[-1].at, prefix
    return None


def _grant_started(request: Request, met_at: datetime) -> datetime:
    """The grant's clock: the first instant the rule was met, whichever came first of the
    recorded one and the one the approvals counting now give."""
    return met_at if request.granted_at is None else min(request.granted_at, met_at)


def status(request: Request, at: datetime, leaders: Iterable[str]) -> Status:
    """Where the request stands at ``at`` with ``leaders`` as the owning org's leaders now."""
    if request.used_at is not None:
        return Status.USED
    if request.denied_at is not None:
        return Status.DENIED
    if request.invalidated_at is not None:
        return Status.INVALIDATED
    met = _rule_met_at(request, frozenset(leaders))
    # A grant comes into being only before the request expires: approvals given in time
    # must not turn into a grant later because someone gained the leader role since.
    never_granted_in_time = request.granted_at is None and at >= request.request_expires_at
    if met is None or never_granted_in_time:
        return Status.EXPIRED if at >= request.request_expires_at else Status.PENDING
    started = _grant_started(request, met[0])
    return Status.GRANT_EXPIRED if at >= started + request.grant_ttl else Status.GRANTED


def grant(request: Request, at: datetime, leaders: Iterable[str]) -> Grant | None:
    """The grant the request holds at ``at``, or None: only while granted, unused, unexpired."""
    roster = frozenset(leaders)
    if status(request, at, roster) is not Status.GRANTED:
        return None
    met = _rule_met_at(request, roster)
    assert met is not None
    granted_at, approvals = _grant_started(request, met[0]), met[1]
    return Grant(
        request.id,
        request.target,
        granted_at,
        granted_at + request.grant_ttl,
        tuple(a.approver.id for a in approvals),
        tuple(a.approver.id for a in approvals if a.approver.leads(roster)),
        request.drill,
    )


def describe(request: Request, at: datetime, leaders: Iterable[str]) -> dict[str, Any]:
    """What an approver or the CLI's ``--json`` sees."""
    roster = frozenset(leaders)
    current = status(request, at, roster)
    held = grant(request, at, roster)
    counting = _counting(request, roster)
    return {
        "id": request.id,
        "status": current.value,
        "service": request.target.service,
        "stage": request.target.stage,
        "digest": request.target.digest,
        "requester": request.requester.id,
        "reason": request.reason,
        "ticket": {"reference": request.ticket.reference, "severity": request.ticket.severity},
        "drill": request.drill,
        "requested_at": request.requested_at.isoformat(),
        "request_expires_at": request.request_expires_at.isoformat(),
        "approvals": [a.approver.id for a in counting],
        "approvals_needed": max(0, request.required_approvers - len(counting)),
        "leader_approved": any(a.approver.leads(roster) for a in counting),
        "grant_expires_at": held.expires_at.isoformat() if held else None,
        "denied_by": request.denied_by,
    }


def standing(request: Request, approver: str, leaders: Iterable[str]) -> dict[str, Any] | None:
    """What ``approver``'s live approval does for the rule, and why it does less than it
    might (None when they have none): an approval is never silently worth less."""
    roster = frozenset(leaders)
    mine = next((a for a in request.approvals if a.live and a.approver.id == approver), None)
    if mine is None:
        return None
    counting = _counting(request, roster)
    counts = any(a.approver.id == approver for a in counting)
    as_leader = counts and mine.approver.leads(roster)
    why = None
    if not counts:
        why = "it came after the request expired, or for another promotion"
    elif approver in roster and not as_leader:
        why = (
            "it was given with a credential scoped below leader: it counts as one of the "
            "approvers, not as the leader's approval the rule asks for; approve with a "
            "leader-scoped credential for that"
        )
    elif not as_leader and not any(a.approver.leads(roster) for a in counting):
        why = "it counts as an approver; a leader of the owning organisation must approve too"
    return {"counts": counts, "as_leader": as_leader, "why": why}


# ---------------------------------------------------------------------------------------------
# Events


def _require_order(request: Request, at: datetime) -> None:
    if at.tzinfo is None:
        raise InvalidInput(
            "event instants must carry a time zone", code="naive_instant", details={"field": "at"}
        )
    if request.last_event_at is not None and at < request.last_event_at:
        raise InvalidInput(
            "events must arrive in time order", code="out_of_order", details={"field": "at"}
        )


def _require_open(request: Request, at: datetime, leaders: frozenset[str]) -> Status:
    current = status(request, at, leaders)
    if current not in OPEN:
        raise Conflict(
            f"the break-glass request is {current.value}",
            code="request_closed",
            details={"status": current.value},
        )
    return current


def _text(value: str, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise InvalidInput(
            f"{field_name} is required", code="invalid_input", details={"field": field_name}
        )
    return value.strip()


def open_request(
    request_id: str,
    target: Target,
    *,
    requester: Principal,
    version_author: str | None,
    org: str,
    reason: str,
    ticket: Ticket,
    at: datetime,
    drill: bool = False,
    request_ttl: timedelta = DEFAULT_REQUEST_TTL,
    grant_ttl: timedelta = DEFAULT_GRANT_TTL,
) -> Request:
    """A new request; refused when the reason, ticket or durations are not usable."""
    if at.tzinfo is None:
        raise InvalidInput(
            "the request instant must carry a time zone",
            code="naive_instant",
            details={"field": "at"},
        )
    if not requester.human:
        raise Forbidden(
            "break-glass is requested by a person, not a bot or machine token", code="not_human"
        )
    for name in ("service", "stage", "digest"):
        _text(getattr(target, name), name)
    if ticket.severity not in SEVERITIES:
        raise InvalidInput(
            f"break-glass needs a SEV1 or SEV2 ticket, not {ticket.severity!r}",
            code="ticket_severity",
            details={"field": "ticket.severity"},
        )
    for name, ttl in (("request_ttl", request_ttl), ("grant_ttl", grant_ttl)):
        if ttl <= timedelta(0) or ttl > timedelta(days=1):
            raise InvalidInput(
                f"{name} must be between 0 and 24 hours",
                code="invalid_input",
                details={"field": name},
            )
    return Request(
        id=_text(request_id, "id"),
        target=target,
        requester=requester,
        version_author=version_author,
        org=_text(org, "org"),
        reason=_text(reason, "reason"),
        ticket=Ticket(_text(ticket.reference, "ticket.reference"), ticket.severity),
        requested_at=at,
        drill=drill,
        request_ttl=request_ttl,
        grant_ttl=grant_ttl,
        last_event_at=at,
    )


def approve(
    request: Request, approver: Principal, target: Target, at: datetime, leaders: Iterable[str]
) -> Request:
    """Record ``approver``'s approval of exactly ``target`` (what they were shown)."""
    roster = frozenset(leaders)
    _require_order(request, at)
    _require_open(request, at, roster)
    if not approver.human:
        raise Forbidden("bots and machine tokens cannot approve break-glass", code="not_human")
    if approver.id == request.requester.id:
        raise Forbidden("the requester cannot approve their own break-glass", code="self_approval")
    if request.version_author is not None and approver.id == request.version_author:
        raise Forbidden(
            "the version's author cannot approve its break-glass", code="author_approval"
        )
    if target != request.target:
        raise Conflict(
            "this approval is for another promotion than the request's (service, stage and digest must match)",
            code="wrong_target",
            details={
                "requested": dataclasses.asdict(request.target),
                "approved": dataclasses.asdict(target),
            },
        )
    if any(a.live and a.approver.id == approver.id for a in request.approvals):
        raise Conflict(f"{approver.id} has already approved", code="already_approved")
    approved = dataclasses.replace(
        request, approvals=(*request.approvals, Approval(approver, target, at)), last_event_at=at
    )
    return _record_grant(approved, roster)


def _record_grant(request: Request, leaders: frozenset[str]) -> Request:
    """Note when the rule is first met, so that the grant's clock never restarts."""
    met = _rule_met_at(request, leaders)
    if met is None or request.granted_at is not None:
        return request
    return dataclasses.replace(request, granted_at=met[0])


def revoke(request: Request, approver: Principal, at: datetime, leaders: Iterable[str]) -> Request:
    """Withdraw ``approver``'s approval; a grant that needed it falls."""
    roster = frozenset(leaders)
    _require_order(request, at)
    _require_open(request, at, roster)
    index = next(
        (i for i, a in enumerate(request.approvals) if a.live and a.approver.id == approver.id),
        None,
    )
    if index is None:
        raise Conflict(f"{approver.id} has no approval to revoke", code="no_approval")
    approvals = list(request.approvals)
    approvals[index] = dataclasses.replace(approvals[index], revoked_at=at)
    return dataclasses.replace(request, approvals=tuple(approvals), last_event_at=at)


def deny(
    request: Request, by: Principal, at: datetime, leaders: Iterable[str], reason: str = ""
) -> Request:
    """A leader's veto: the request is closed for good."""
    roster = frozenset(leaders)
    _require_order(request, at)
    _require_open(request, at, roster)
    if not by.leads(roster):
        scoped = by.id in roster and not by.leader_scope
        raise Forbidden(
            "only a leader of the owning organisation can deny break-glass"
            + (" (this credential is scoped below leader)" if scoped else ""),
            code="not_a_leader",
        )
    return dataclasses.replace(
        request, denied_by=by.id, denied_at=at, denial_reason=reason, last_event_at=at
    )


def version_changed(
    request: Request, service: str, stage: str, digest: str, at: datetime, leaders: Iterable[str]
) -> Request:
    """The candidate version for (service, stage) is now ``digest``: an open request for
    another digest of that promotion is invalidated; anything else is left as it was."""
    _require_order(request, at)
    same_promotion = (service, stage) == (request.target.service, request.target.stage)
    if (
        not same_promotion
        or digest == request.target.digest
        or status(request, at, leaders) not in OPEN
    ):
        return dataclasses.replace(request, last_event_at=at)
    return dataclasses.replace(
        request, invalidated_at=at, invalidated_by_digest=digest, last_event_at=at
    )


def use(
    request: Request, target: Target, at: datetime, leaders: Iterable[str], *, drill: bool = False
) -> tuple[Request, Grant]:
    """Spend the grant on the promotion of ``target``; refused unless it is exactly the
    granted one, in the same mode (a drill grant never lets a real promotion through)."""
    roster = frozenset(leaders)
    _require_order(request, at)
    held = grant(request, at, roster)
    if held is None:
        current = status(request, at, roster)
        raise Conflict(
            f"no usable grant: the request is {current.value}",
            code="no_grant",
            details={"status": current.value},
        )
    if not held.covers(target, drill=drill):
        raise Conflict("the grant is for another promotion or mode", code="wrong_target")
    return dataclasses.replace(request, used_at=at, last_event_at=at), held


# ---------------------------------------------------------------------------------------------
# The same transitions as stored events, for a service that keeps the log and replays it


@dataclass(frozen=True)
class Approved:
    approver: Principal
    target: Target
    at: datetime


@dataclass(frozen=True)
class Revoked:
    approver: Principal
    at: datetime


@dataclass(frozen=True)
class Denied:
    by: Principal
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class VersionChanged:
    service: str
    stage: str
    digest: str
    at: datetime


@dataclass(frozen=True)
class Used:
    target: Target
    at: datetime
    drill: bool = False


Event = Approved | Revoked | Denied | VersionChanged | Used


def apply(request: Request, event: Event, leaders: Iterable[str]) -> Request:
    """``request`` after ``event``, or the refusal that event gets."""
    match event:
        case Approved(approver, target, at):
            return approve(request, approver, target, at, leaders)
        case Revoked(approver, at):
            return revoke(request, approver, at, leaders)
        case Denied(by, at, reason):
            return deny(request, by, at, leaders, reason)
        case VersionChanged(service, stage, digest, at):
            return version_changed(request, service, stage, digest, at, leaders)
        case Used(target, at, drill):
            return use(request, target, at, leaders, drill=drill)[0]
    raise InvalidInput(
        "unknown break-glass event", code="invalid_input", details={"field": "event"}
    )
