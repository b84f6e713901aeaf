"""`mech deploy …` from a CI job or a laptop: each command is one call to the server's
deploys API (`/api/v1/deploys/…`) as MECH_TOKEN's user, so the server checks it exactly as
it checks any other client and the caller needs no database credentials.

The same methods as cli_direct.Direct, answering the same dictionaries. Imports nothing of
the server (no SQLAlchemy, FastAPI or services): see core/cli_http.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mechanisms.core.cli_http import ApiClient, segment

API = "/api/v1/deploys"


class Remote:
    def __init__(self, url: str, token: str | None) -> None:
        self.api = ApiClient(url, token)

    # --- the gate, promotions and approvals -------------------------------------------

    def gate(
        self, service: str, stage: str, version: str, at: datetime | None, drill: bool
    ) -> dict[str, Any]:
        return self.api.get(
            f"{API}/gate",
            service=service,
            stage=stage,
            version=version,
            at=at.isoformat() if at else None,
            drill=drill or None,
        )

    def promote(self, service: str, stage: str, version: str, drill: bool) -> dict[str, Any]:
        body = {"service": service, "stage": stage, "version": version, "drill": drill}
        answer = self.api.post_or_refusal(f"{API}/promotions", body, "promotion_blocked")
        if "error" in answer:
            return {"decision": answer["error"]["details"], "deployment": None}
        return answer

    def approve_stage(self, service: str, stage: str, version: str, comment: str) -> dict[str, Any]:
        body = {"service": service, "stage": stage, "version": version, "comment": comment}
        return self.api.post(f"{API}/approvals", body)

    def history(self, service: str, limit: int) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/pipelines/{segment(service)}/timeline", limit=limit)

    # --- pipelines, versions, tests ----------------------------------------------------

    def set_pipeline(
        self, service: str, stages: Any, ticket: str | None, why: str | None
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """The stages, or the protected change waiting for a second leader (a 202)."""
        body = {"stages": stages, "ticket": ticket, "change_reason": why}
        answer = self.api.put(f"{API}/pipelines/{segment(service)}", body)
        return answer if "protection" in answer else answer["stages"]

    def pipeline(self, service: str) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/pipelines/{segment(service)}")["stages"]

    def register_version(
        self, service: str, artifact: str, digest: str, author: str | None
    ) -> dict[str, Any]:
        body = {"service": service, "artifact": artifact, "digest": digest, "author": author}
        return self.api.post(f"{API}/versions", body)

    def name_author(self, service: str, version: str, author: str) -> dict[str, Any]:
        body = {"service": service, "version": version, "author": author}
        return self.api.post(f"{API}/versions/author", body)

    def versions(self, service: str) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/versions", service=service)

    def upload_tests(
        self, service: str, version: str, suite: str, junit_xml: bytes
    ) -> dict[str, Any]:
        return self.api.upload(
            f"{API}/tests",
            junit_xml,
            "application/xml",
            service=service,
            version=version,
            suite=suite,
        )

    # --- block windows -----------------------------------------------------------------

    def windows(self, service: str | None, stage: str | None) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/windows", service=service, stage=stage)

    def add_window(
        self,
        scope: str,
        target: str,
        definition: Any,
        reason: str,
        window_id: str | None,
    ) -> dict[str, Any]:
        body = {
            "scope": scope,
            "target": target,
            "definition": definition,
            "reason": reason,
            "id": window_id,
        }
        return self.api.post(f"{API}/windows", body)

    def freeze(self, scope: str, target: str, until: datetime, reason: str) -> dict[str, Any]:
        body = {"scope": scope, "target": target, "until": until.isoformat(), "reason": reason}
        return self.api.post(f"{API}/windows/freeze", body)

    def update_window(
        self,
        window_id: str,
        definition: Any,
        reason: str | None,
        ticket: str | None,
        why: str | None,
    ) -> dict[str, Any]:
        body = {"definition": definition, "reason": reason, "ticket": ticket, "change_reason": why}
        return self.api.put(f"{API}/windows/{segment(window_id)}", body)

    def delete_window(
        self, window_id: str, ticket: str | None, why: str | None
    ) -> dict[str, Any] | None:
        """None once deleted (204), or the protected change waiting for a second leader."""
        return self.api.delete(f"{API}/windows/{segment(window_id)}", ticket=ticket, reason=why)

    def import_windows(
        self, scope: str, target: str, calendar: bytes, tz: str
    ) -> list[dict[str, Any]]:
        return self.api.upload(
            f"{API}/windows/import", calendar, "text/calendar", scope=scope, target=target, tz=tz
        )

    def export_windows(self, service: str | None, stage: str | None) -> str:
        return self.api.text(f"{API}/windows/export.ics", service=service, stage=stage)

    # --- protected changes -------------------------------------------------------------

    def protected_changes(self, service: str | None, open_only: bool) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/changes", service=service, open_only=open_only)

    def approve_change(self, change_id: int, digest: str, comment: str) -> dict[str, Any]:
        body = {"digest": digest, "comment": comment}
        return self.api.post(f"{API}/changes/{change_id}/approve", body)

    def deny_change(self, change_id: int, reason: str) -> dict[str, Any]:
        return self.api.post(f"{API}/changes/{change_id}/deny", {"reason": reason})

    # --- break-glass -------------------------------------------------------------------

    def request_breakglass(
        self, service: str, stage: str, version: str, reason: str, ticket: str, drill: bool
    ) -> dict[str, Any]:
        body = {
            "service": service,
            "stage": stage,
            "version": version,
            "reason": reason,
            "ticket": ticket,
            "drill": drill,
        }
        return self.api.post(f"{API}/breakglass", body)

    def breakglass_requests(self, service: str | None, open_only: bool) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/breakglass", service=service, open_only=open_only)

    def breakglass_request(self, request_id: int) -> dict[str, Any]:
        return self.api.get(f"{API}/breakglass/{request_id}")

    def approve_breakglass(
        self, request_id: int, service: str, stage: str, digest: str, comment: str
    ) -> dict[str, Any]:
        body = {"service": service, "stage": stage, "digest": digest, "comment": comment}
        return self.api.post(f"{API}/breakglass/{request_id}/approve", body)

    def deny_breakglass(self, request_id: int, reason: str) -> dict[str, Any]:
        return self.api.post(f"{API}/breakglass/{request_id}/deny", {"reason": reason})

    def lift_denial(self, request_id: int, reason: str) -> dict[str, Any]:
        return self.api.post(f"{API}/breakglass/{request_id}/lift-denial", {"reason": reason})

    def revoke_breakglass(self, request_id: int) -> dict[str, Any]:
        return self.api.post(f"{API}/breakglass/{request_id}/revoke")

    def reviews(self, open_only: bool) -> list[dict[str, Any]]:
        return self.api.get(f"{API}/reviews", open_only=open_only)

    def close_review(self, review_id: int, what_happened: str, why: str) -> dict[str, Any]:
        body = {"what_happened": what_happened, "why": why}
        return self.api.post(f"{API}/reviews/{review_id}/close", body)
