"""`mech deploy …` on the server itself: each command opens the database (MECH_DATABASE_URL)
and calls the deploys services in one unit of work, as the local operator or, with a token,
as that token's user (checked against the database as the API checks it).

Answers the same dictionaries the API answers (cli_remote.py), so a command prints the
same whichever path it took."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mechanisms.core.cli import acting
from mechanisms.deploys import breakglass, changes, pipelines, windows
from mechanisms.deploys.tables import ProtectedChange


class Direct:
    def __init__(self, token: str | None) -> None:
        self.token = token

    # --- the gate, promotions and approvals -------------------------------------------

    def gate(
        self, service: str, stage: str, version: str, at: datetime | None, drill: bool
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return pipelines.gate(ctx, service, stage, version, at, drill=drill).to_dict()

    def promote(self, service: str, stage: str, version: str, drill: bool) -> dict[str, Any]:
        with acting(self.token) as ctx:
            decision, row = pipelines.promote(ctx, service, stage, version, drill=drill)
            return {
                "decision": decision.to_dict(),
                "deployment": pipelines.deployment_snapshot(row) if row else None,
            }

    def approve_stage(self, service: str, stage: str, version: str, comment: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = pipelines.approve_stage(ctx, service, stage, version, comment)
            return pipelines.stage_approval_snapshot(row)

    def history(self, service: str, limit: int) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return [pipelines.timeline_snapshot(r) for r in pipelines.timeline(ctx, service, limit)]

    # --- pipelines, versions, tests ----------------------------------------------------

    def set_pipeline(
        self, service: str, stages: Any, ticket: str | None, why: str | None
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """The stages, or the protected change waiting for a second leader."""
        with acting(self.token) as ctx:
            result = pipelines.set_pipeline(ctx, service, stages, ticket=ticket, reason=why)
            if isinstance(result, ProtectedChange):
                return changes.describe(ctx, result)
            return pipelines.stage_states(ctx, service)

    def pipeline(self, service: str) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return pipelines.stage_states(ctx, service)

    def register_version(
        self, service: str, artifact: str, digest: str, author: str | None
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = pipelines.register_version(ctx, service, artifact, digest, author)
            return pipelines.version_snapshot(row)

    def name_author(self, service: str, version: str, author: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = pipelines.name_author(ctx, service, version, author)
            return pipelines.version_snapshot(row)

    def versions(self, service: str) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return [pipelines.version_snapshot(v) for v in pipelines.list_versions(ctx, service)]

    def upload_tests(
        self, service: str, version: str, suite: str, junit_xml: bytes
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = pipelines.upload_tests(ctx, service, version, suite, junit_xml)
            return pipelines.test_run_snapshot(row)

    # --- block windows -----------------------------------------------------------------

    def windows(self, service: str | None, stage: str | None) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return [windows.snapshot(w) for w in windows.list_windows(ctx, service, stage)]

    def add_window(
        self,
        scope: str,
        target: str,
        definition: Any,
        reason: str,
        window_id: str | None,
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = windows.create_window(ctx, scope, target, definition, reason, window_id)
            return windows.snapshot(row)

    def freeze(self, scope: str, target: str, until: datetime, reason: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return windows.snapshot(windows.freeze(ctx, scope, target, until, reason))

    def update_window(
        self,
        window_id: str,
        definition: Any,
        reason: str | None,
        ticket: str | None,
        why: str | None,
    ) -> dict[str, Any]:
        """The window, or the protected change waiting for a second leader."""
        with acting(self.token) as ctx:
            result = windows.update_window(
                ctx, window_id, definition, reason, ticket=ticket, change_reason=why
            )
            if isinstance(result, ProtectedChange):
                return changes.describe(ctx, result)
            return windows.snapshot(result)

    def delete_window(
        self, window_id: str, ticket: str | None, why: str | None
    ) -> dict[str, Any] | None:
        """None once deleted, or the protected change waiting for a second leader."""
        with acting(self.token) as ctx:
            pending = windows.delete_window(ctx, window_id, ticket=ticket, reason=why)
            return None if pending is None else changes.describe(ctx, pending)

    def import_windows(
        self, scope: str, target: str, calendar: bytes, tz: str
    ) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            rows = windows.import_ical(ctx, scope, target, calendar, tz)
            return [windows.snapshot(w) for w in rows]

    def export_windows(self, service: str | None, stage: str | None) -> str:
        with acting(self.token) as ctx:
            return windows.export_ical(ctx, service, stage).decode("utf-8")

    # --- protected changes -------------------------------------------------------------

    def protected_changes(self, service: str | None, open_only: bool) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return [changes.describe(ctx, r) for r in changes.list_changes(ctx, service, open_only)]

    def approve_change(self, change_id: int, digest: str, comment: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = changes.approve(ctx, change_id, digest=digest, comment=comment)
            return changes.describe(ctx, row)

    def deny_change(self, change_id: int, reason: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return changes.describe(ctx, changes.deny(ctx, change_id, reason))

    # --- break-glass -------------------------------------------------------------------

    def request_breakglass(
        self, service: str, stage: str, version: str, reason: str, ticket: str, drill: bool
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = breakglass.request(ctx, service, stage, version, reason, ticket, drill=drill)
            return breakglass.describe(ctx, row)

    def breakglass_requests(self, service: str | None, open_only: bool) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            rows = breakglass.list_requests(ctx, service, open_only)
            return [breakglass.describe(ctx, r) for r in rows]

    def breakglass_request(self, request_id: int) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return breakglass.describe(ctx, breakglass.get(ctx, request_id))

    def approve_breakglass(
        self, request_id: int, service: str, stage: str, digest: str, comment: str
    ) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = breakglass.approve(
                ctx, request_id, service=service, stage=stage, digest=digest, comment=comment
            )
            return breakglass.describe(ctx, row)

    def deny_breakglass(self, request_id: int, reason: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return breakglass.describe(ctx, breakglass.deny(ctx, request_id, reason))

    def lift_denial(self, request_id: int, reason: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return breakglass.describe(ctx, breakglass.lift_denial(ctx, request_id, reason))

    def revoke_breakglass(self, request_id: int) -> dict[str, Any]:
        with acting(self.token) as ctx:
            return breakglass.describe(ctx, breakglass.revoke(ctx, request_id))

    def reviews(self, open_only: bool) -> list[dict[str, Any]]:
        with acting(self.token) as ctx:
            return [breakglass.review_snapshot(r) for r in breakglass.list_reviews(ctx, open_only)]

    def close_review(self, review_id: int, what_happened: str, why: str) -> dict[str, Any]:
        with acting(self.token) as ctx:
            row = breakglass.close_review(ctx, review_id, what_happened, why)
            return breakglass.review_snapshot(row)
