"""The tamper-evident audit trail.

Every change of state appends a record in the same transaction as the change.
Records form a hash chain: each record's hash covers its own fields and the hash
of the record before it, so editing, deleting or reordering any row breaks the
chain from that row on, and the head row catches deletion of the newest ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from mechanisms.core.context import Ctx
from mechanisms.core.db import bulk_insert, canonical_json
from mechanisms.core.errors import InvalidInput
from mechanisms.core.identity import USERNAME_RE, Role
from mechanisms.core.permissions import require_site_role, single_org_of, tenancy
from mechanisms.core.tables import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64
HEAD_ID = 1


def change_digest(before: Any, after: Any) -> str:
    return hashlib.sha256(canonical_json({"before": before, "after": after}).encode()).hexdigest()


def changed_fields(before: dict | None, after: dict | None) -> dict[str, list[Any]]:
    """Field by field, [old, new] for what differs: what a reader of the trail wants to see."""
    before, after = before or {}, after or {}
    return {
        key: [before.get(key), after.get(key)]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def link_hash(prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + "\n" + canonical_json(record)).encode()).hexdigest()


def _chained_fields(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    digest: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "change_digest": digest,
        "details": details,
    }


def stored_fields(row: AuditRecord) -> dict[str, Any]:
    """The fields of a stored record that its hash covers."""
    return _chained_fields(
        row.seq,
        row.at,
        row.actor,
        row.action,
        row.object_type,
        row.object_id,
        row.change_digest,
        row.details,
    )


def _lock_head(session: Session) -> AuditHead:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


@dataclass(frozen=True)
class Entry:
    """One record for ``record_many``: the arguments ``record`` takes."""

    action: str
    object_type: str
    object_id: Any
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    org_id: int | None = None


def _link(ctx: Ctx, at: datetime, seq: int, prev_hash: str, entry: Entry) -> dict[str, Any]:
    """The stored columns of one record chained after ``prev_hash``."""
    # Round-trip through JSON now so that what is hashed is exactly what is stored.
    stored_details = json.loads(
        canonical_json(
            {**(entry.details or {}), "changes": changed_fields(entry.before, entry.after)}
        )
    )
    digest = change_digest(entry.before, entry.after)
    object_id = str(entry.object_id)
    fields = _chained_fields(
        seq,
        at,
        ctx.principal.actor,
        entry.action,
        entry.object_type,
        object_id,
        digest,
        stored_details,
    )
    return {
        "seq": seq,
        "at": at,
        "actor": ctx.principal.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": object_id,
        "change_digest": digest,
        "details": stored_details,
        "prev_hash": prev_hash,
        "hash": link_hash(prev_hash, fields),
        "org_id": entry.org_id if entry.org_id is not None else single_org_of(ctx),
    }


def record(
    ctx: Ctx,
    action: str,
    object_type: str,
    object_id: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    org_id: int | None = None,
) -> AuditRecord:
    """Append one record to the chain inside the caller's transaction. ``org_id``: the
    organisation the object belongs to; by default the actor's, when they have just one."""
    head = _lock_head(ctx.session)
    columns = _link(
        ctx,
        ctx.now.astimezone(UTC),
        head.last_seq + 1,
        head.last_hash,
        Entry(action, object_type, object_id, before, after, details, org_id),
    )
    row = AuditRecord(**columns)
    ctx.session.add(row)
    head.last_seq, head.last_hash = columns["seq"], columns["hash"]
    ctx.session.flush()
    return row


def record_many(ctx: Ctx, entries: Sequence[Entry]) -> int:
    """Append many records to the chain in order, as that many ``record`` calls would,
    with the head locked once and the rows written by bulk INSERTs (no ORM objects):
    what a worker tick that moves thousands of objects needs. Returns how many."""
    if not entries:
        return 0
    head = _lock_head(ctx.session)
    at = ctx.now.astimezone(UTC)
    seq, prev_hash = head.last_seq, head.last_hash
    rows = []
    for entry in entries:
        seq += 1
        columns = _link(ctx, at, seq, prev_hash, entry)
        prev_hash = columns["hash"]
        rows.append(columns)
    # Earlier records of this transaction must reach the table before these (ids in order).
    ctx.session.flush()
    bulk_insert(ctx.session, AuditRecord.__table__, rows)
    head.last_seq, head.last_hash = seq, prev_hash
    ctx.session.flush()
    return len(rows)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    reason: str | None = None
    # The first signed checkpoint the chain no longer matches.
    bad_checkpoint: str | None = None


@dataclass(frozen=True)
class Anchor:
    """A head the chain once had, known from outside the database (a signed checkpoint)."""

    seq: int
    hash: str
    name: str


def _anchor_mismatch(row: AuditRecord, anchors: dict[int, list[Anchor]]) -> Anchor | None:
    return next((a for a in anchors.get(row.seq, ()) if a.hash != row.hash), None)


def _records_in_order(
    session: Session, after_seq: int = 0, up_to_seq: int | None = None
) -> Iterator[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.id)
    if after_seq:
        query = query.where(AuditRecord.seq > after_seq)
    if up_to_seq is not None:
        query = query.where(AuditRecord.seq <= up_to_seq)
    yield from session.execute(query).scalars().yield_per(1000)


def verify(
    session: Session,
    anchors: Sequence[Anchor] = (),
    start: Anchor | None = None,
    end: tuple[int, str] | None = None,
) -> VerifyResult:
    """Walk the chain in insertion order and report the first record that does not fit:
    one that breaks the chain, or whose hash differs from an anchor at its position (the
    history up to there was rewritten, every later hash recomputed).

    ``start`` (a trusted checkpoint) skips the records up to it; ``end`` (seq, hash) checks
    the chain up to that record instead of the head, for a caller that read the head
    before walking while others append."""
    by_seq: dict[int, list[Anchor]] = {}
    for anchor in anchors:
        by_seq.setdefault(anchor.seq, []).append(anchor)
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    if start is not None:
        expected_prev, expected_seq = start.hash, start.seq + 1
    up_to = end[0] if end is not None else None
    for row in _records_in_order(session, expected_seq - 1, up_to):
        fields = stored_fields(row)
        problem, bad_seq = None, row.seq
        if row.seq > expected_seq:
            problem = "it is missing or out of order (a record was deleted or reordered)"
            bad_seq = expected_seq
        elif row.seq < expected_seq:
            problem = f"it comes after record {expected_seq - 1} (records were reordered)"
        elif row.prev_hash != expected_prev:
            problem = (
                "its link to the previous record is broken (records were deleted or reordered)"
            )
        elif link_hash(row.prev_hash, fields) != row.hash:
            problem = "its content does not match its hash (the record was edited)"
        if problem:
            return VerifyResult(False, checked, bad_seq, row.id, problem)
        rewritten = _anchor_mismatch(row, by_seq)
        if rewritten is not None:
            return VerifyResult(
                False,
                checked,
                row.seq,
                row.id,
                f"it does not match {rewritten.name}: the history up to it was rewritten",
                rewritten.name,
            )
        expected_prev, expected_seq, checked = row.hash, row.seq + 1, checked + 1

    beyond = [a for a in anchors if a.seq >= expected_seq]
    if beyond:
        first = min(beyond, key=lambda a: a.seq)
        return VerifyResult(
            False,
            checked,
            expected_seq,
            None,
            f"the chain ends at record {expected_seq - 1}, before {first.name} "
            "(records were deleted)",
            first.name,
        )

    if end is not None:
        head_seq, head_hash = end
    else:
        head = session.get(AuditHead, HEAD_ID)
        head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        return VerifyResult(
            False,
            checked,
            expected_seq,
            None,
            f"the chain ends at record {expected_seq - 1} but its head says {head_seq} "
            "(the newest records were deleted or the head was edited)",
        )
    return VerifyResult(True, checked)


@dataclass
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Keyset pagination: records with seq below this one, newest first.
    before_seq: int | None = None
    limit: int = 50


def browse_for(ctx: Ctx, flt: AuditFilter) -> list[AuditRecord]:
    """Everyone signed in may read their organisations' part of the trail: verifying people
    is what it is for. Site administrators read all of it."""
    require_site_role(ctx, Role.VIEWER)
    return browse(ctx.session, flt, tenancy(ctx).org_ids)


def actor_matches(actor: str) -> ColumnElement[bool]:
    """Records made by this actor; for a username, by the person's session and by every
    token of theirs (``lena[token:ci]``), and not by another user whose name merely starts
    the same (``lenab``): usernames cannot contain '[', so the prefix is lena's alone."""
    exact = AuditRecord.actor == actor
    if not USERNAME_RE.match(actor):
        return exact
    return or_(exact, AuditRecord.actor.startswith(f"{actor}[token:", autoescape=True))


def browse(
    session: Session, flt: AuditFilter, org_ids: frozenset[int] | None = None
) -> list[AuditRecord]:
    if not 1 <= flt.limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", details={"field": "limit"})
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(flt.limit)
    if flt.actor:
        query = query.where(actor_matches(flt.actor))
    if flt.action:
        query = query.where(AuditRecord.action == flt.action)
    if flt.object_type:
        query = query.where(AuditRecord.object_type == flt.object_type)
    if flt.object_id:
        query = query.where(AuditRecord.object_id == flt.object_id)
    if flt.since:
        query = query.where(AuditRecord.at >= flt.since)
    if flt.until:
        query = query.where(AuditRecord.at < flt.until)
    if flt.before_seq:
        query = query.where(AuditRecord.seq < flt.before_seq)
    if org_ids is not None:
        query = query.where(AuditRecord.org_id.in_(sorted(org_ids)))
    return list(session.execute(query).scalars())


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()


def to_dict(row: AuditRecord) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "change_digest": row.change_digest,
        "details": row.details,
        "hash": row.hash,
    }
