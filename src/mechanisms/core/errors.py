"""Errors that services raise; interfaces turn them into 4xx answers or exit codes.

Every error carries a stable machine ``code``, a human ``message`` and optional
``details`` (for example the field that was wrong).
"""

from __future__ import annotations

from typing import Any


class MechanismsError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(MechanismsError):
    status = 422
    code = "invalid_input"


class NotAuthenticated(MechanismsError):
    status = 401
    code = "not_authenticated"


class Forbidden(MechanismsError):
    status = 403
    code = "forbidden"


class NotFound(MechanismsError):
    status = 404
    code = "not_found"


class Conflict(MechanismsError):
    status = 409
    code = "conflict"


class RecordedRefusal(Conflict):
    """A refusal that is itself a fact to keep (a blocked promotion is on the deploy
    timeline and in the audit trail): the unit of work commits what the service recorded
    before refusing. A service raises it only after writing nothing but that record."""


class StaleState(Conflict):
    """Optimistic concurrency lost: someone else moved the object first."""

    code = "stale_state"
