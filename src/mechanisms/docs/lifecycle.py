"""The status machine of a decision doc (decision 0016).

draft ──submit──▶ in_review ──decide──▶ accepted ──supersede──▶ superseded
  ▲                  │          └─────▶ rejected
  └────withdraw──────┘

Only drafts and docs in review change their text; a decided doc is a record and changes
only by being superseded by its successor. Pure: no database, no clock.
"""

from __future__ import annotations

from mechanisms.core.errors import Conflict

DRAFT = "draft"
IN_REVIEW = "in_review"
ACCEPTED = "accepted"
REJECTED = "rejected"
SUPERSEDED = "superseded"
STATUSES = (DRAFT, IN_REVIEW, ACCEPTED, REJECTED, SUPERSEDED)
OUTCOMES = (ACCEPTED, REJECTED)
DOORS = ("one_way", "two_way")

# action → (the statuses it starts from, the status it leads to)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "submit": ((DRAFT,), IN_REVIEW),
    "withdraw": ((IN_REVIEW,), DRAFT),
    "accept": ((IN_REVIEW,), ACCEPTED),
    "reject": ((IN_REVIEW,), REJECTED),
    "supersede": ((ACCEPTED,), SUPERSEDED),
}
EDITABLE = (DRAFT, IN_REVIEW)


class InvalidTransition(Conflict):
    code = "invalid_transition"


def allowed_actions(status: str) -> list[str]:
    return [action for action, (sources, _) in ACTIONS.items() if status in sources]


def target(status: str, action: str) -> str:
    """The status ``action`` leads to from ``status``, or a 409 that says what may be done."""
    if action not in ACTIONS:
        raise InvalidTransition(
            f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}",
            details={"action": action, "allowed": allowed_actions(status)},
        )
    sources, to = ACTIONS[action]
    if status not in sources:
        allowed = allowed_actions(status)
        raise InvalidTransition(
            f"a doc that is {status.replace('_', ' ')} cannot {action}"
            + (f"; it can {', '.join(allowed)}" if allowed else "; it is final"),
            details={"status": status, "action": action, "allowed": allowed},
        )
    return to


def require_editable(status: str) -> None:
    if status not in EDITABLE:
        raise InvalidTransition(
            f"a doc that is {status.replace('_', ' ')} is a record and cannot change; "
            "write its successor and supersede it",
            details={"status": status},
        )
