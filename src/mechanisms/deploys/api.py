"""HTTP API of the deploys mechanism (`/api/v1/deploys/…`): pipelines, versions, test
results (JUnit XML), the gate, promotions, stage approvals, block windows (iCalendar in and
out, ad-hoc freezes) and break-glass with its reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput
from mechanisms.deploys import breakglass, changes, gates, pipelines, windows
from mechanisms.deploys.tables import ProtectedChange
from mechanisms.web.http import (
    Input,
    Instant,
    RowId,
    Text,
    UnitOfWorkRoute,
    read_upload,
    request_ctx,
    upload_body,
)

router = APIRouter(prefix="/api/v1/deploys", route_class=UnitOfWorkRoute, tags=["deploys"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
Name = Annotated[Text, Field(min_length=1, max_length=200)]
ServiceQ = Annotated[str, Query(min_length=1, max_length=128)]
NameQ = Annotated[str, Query(min_length=1, max_length=200)]
WindowId = Annotated[str, Path(min_length=1, max_length=200)]


# --- models ---------------------------------------------------------------------------


class ApprovalRuleIn(Input):
    roles: list[Name] = Field(min_length=1, max_length=3)
    count: int = Field(default=1, ge=1, le=10)


class StageIn(Input):
    name: Name
    required_suites: list[Name] = Field(default_factory=list, max_length=50)
    bake_minutes: int = Field(default=0, ge=0, le=10080)
    alarms: list[Name] = Field(default_factory=list, max_length=50)
    approval: ApprovalRuleIn | None = None


TicketRef = Annotated[Text, Field(min_length=1, max_length=40)]
ChangeReason = Annotated[Text, Field(min_length=1, max_length=2000)]


class ProtectedIn(Input):
    """What a protected change (lowering a requirement, narrowing a window in force) cites."""

    ticket: TicketRef | None = Field(
        default=None, description="The open ops ticket a protected change cites, e.g. 42"
    )
    change_reason: ChangeReason | None = Field(
        default=None, description="Why the protected change is made"
    )


class ProtectedChangeOut(BaseModel):
    id: int
    status: str
    kind: str
    subject: str
    services: list[str]
    proposal: dict[str, Any]
    digest: str
    protection: dict[str, Any]
    requester: str
    reason: str
    ticket: int
    requested_at: str
    expires_at: str
    approvals: list[str]
    decided_by: str | None
    decided_at: str | None
    outcome: str


PENDING_CHANGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    202: {
        "model": ProtectedChangeOut,
        "description": "A protected change stored for a second leader's approval",
    }
}


class PipelineIn(ProtectedIn):
    stages: list[StageIn] = Field(min_length=1, max_length=20)


class ApprovalRuleOut(BaseModel):
    roles: list[str]
    count: int


class DeploymentOut(BaseModel):
    id: int
    stage: str
    digest: str
    state: str
    previous_good: str | None
    started_at: str
    bake_until: str
    finished_at: str | None
    promoted_by: str
    break_glass: int | None
    rollback_alarm: str | None


class StageOut(BaseModel):
    name: str
    required_suites: list[str]
    bake_minutes: int
    alarms: list[str]
    approval: ApprovalRuleOut | None
    deployment: DeploymentOut | None = None


class PipelineOut(BaseModel):
    service: str
    stages: list[StageOut]


class VersionIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    artifact: Name
    digest: Name
    author: Name | None = None


class VersionAuthorIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    version: Name
    author: Name = Field(description="The author's username or email")


class VersionOut(BaseModel):
    service: str
    artifact: str
    digest: str
    author: str | None
    registered_by: str
    created_at: str


class ProblemOut(BaseModel):
    suite: str
    classname: str
    name: str
    kind: str
    message: str


class TestRunOut(BaseModel):
    service: str
    digest: str
    suite: str
    tests: int
    failures: int
    errors: int
    skipped: int
    time_seconds: float
    passed: bool
    problems: list[ProblemOut]
    uploaded_by: str
    uploaded_at: str


class BlockerOut(BaseModel):
    code: str
    message: str
    clear: str
    details: dict[str, Any]


class DecisionOut(BaseModel):
    allowed: bool
    service: str
    stage: str
    digest: str
    at: str
    drill: bool
    break_glass: bool
    blockers: list[BlockerOut]
    window: dict[str, Any] = Field(
        description="The calendar's answer: state OPEN or BLOCKED, blocking windows, next_transition"
    )
    rollback: dict[str, Any] | None


class PromotionIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    stage: Name
    version: Name
    drill: bool = False


class PromotionOut(BaseModel):
    decision: DecisionOut
    deployment: DeploymentOut | None


class StageApprovalIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    stage: Name
    version: Name
    comment: Text = Field(default="", max_length=2000)


class StageApprovalOut(BaseModel):
    id: int
    service: str
    stage: str
    digest: str
    approver: str
    roles: list[str]
    approved_at: str


class TimelineOut(BaseModel):
    kind: str
    stage: str | None
    digest: str | None
    actor: str
    at: str
    details: dict[str, Any]


ScopeKind = Literal["org", "team", "service", "stage"]


class WindowIn(Input):
    scope: ScopeKind
    target: Annotated[Text, Field(min_length=1, max_length=400)] = Field(
        description="Team slug (org, team), service key (service) or service/stage (stage)"
    )
    definition: dict[str, Any] = Field(
        description="kind one_off|freeze (start, end, tz), recurring (rrule, dtstart, "
        "duration_minutes or end_time+days_later, tz, exdates) or holidays (country, "
        "subdivision, tz, days_before, days_after); times are wall-clock in tz"
    )
    reason: Text = Field(default="", max_length=2000)
    id: Name | None = None


class FreezeIn(Input):
    scope: ScopeKind
    target: Annotated[Text, Field(min_length=1, max_length=400)]
    until: Instant
    reason: Text = Field(min_length=1, max_length=2000)


class WindowOut(BaseModel):
    id: str
    scope: str
    scope_key: str
    kind: str
    definition: dict[str, Any]
    reason: str
    created_by: str
    created_at: str
    expires_at: str | None


class BreakGlassIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    stage: Name
    version: Name
    reason: Text = Field(min_length=1, max_length=2000)
    ticket: Annotated[Text, Field(min_length=1, max_length=40)] = Field(
        description="An open ops ticket of severity SEV1 or SEV2, e.g. 42"
    )
    drill: bool = False
    request_ttl_minutes: int | None = Field(default=None, ge=1, le=1440)
    grant_ttl_minutes: int | None = Field(default=None, ge=1, le=1440)


class BreakGlassApproveIn(Input):
    service: Annotated[Text, Field(min_length=1, max_length=128)]
    stage: Name
    digest: Name
    comment: Text = Field(default="", max_length=2000)


class BreakGlassDenyIn(Input):
    reason: Text = Field(default="", max_length=2000)


class TicketOut(BaseModel):
    reference: str
    severity: str


class ReviewOut(BaseModel):
    id: int
    request: int
    service: str
    opened_at: str
    closed_at: str | None
    closed_by: str | None
    what_happened: str
    why: str


class ApprovalStandingOut(BaseModel):
    counts: bool
    as_leader: bool
    why: str | None


class BreakGlassOut(BaseModel):
    id: int
    status: str
    service: str
    stage: str
    digest: str
    requester: str
    version_author: str | None
    reason: str
    ticket: TicketOut
    drill: bool
    requested_at: str
    request_expires_at: str
    approvals: list[str]
    approvals_needed: int
    leader_approved: bool
    grant_expires_at: str | None
    denied_by: str | None
    denial_lifted_by: str | None
    denial_lifted_at: str | None
    used_at: str | None
    review: ReviewOut | None
    # What the caller's own approval does for the two-person rule, and why it does less.
    your_approval: ApprovalStandingOut | None = None


class ReviewCloseIn(Input):
    what_happened: Text = Field(min_length=1, max_length=2000)
    why: Text = Field(min_length=1, max_length=2000)


def _decision(decision: gates.Decision) -> DecisionOut:
    return DecisionOut(**decision.to_dict())


def _pipeline(ctx: Ctx, service: str) -> PipelineOut:
    return PipelineOut(
        service=service, stages=[StageOut(**s) for s in pipelines.stage_states(ctx, service)]
    )


# --- pipelines, versions, tests -------------------------------------------------------


@router.get("/pipelines", response_model=list[PipelineOut])
def list_pipelines(ctx: CtxDep) -> list[PipelineOut]:
    return [_pipeline(ctx, p.service_key) for p in pipelines.list_pipelines(ctx)]


@router.put("/pipelines/{service}", response_model=PipelineOut, responses=PENDING_CHANGE_RESPONSE)
def set_pipeline(
    service: Annotated[str, Path(min_length=1, max_length=128)], body: PipelineIn, ctx: CtxDep
) -> PipelineOut | JSONResponse:
    """Create or replace the service's pipeline (its stages in order, each name once).
    Lowering a requirement or removing a stage needs a leader and a ticket; when it lifts a
    block in force now it is stored for a second leader (202 with the request)."""
    result = pipelines.set_pipeline(
        ctx,
        service,
        [s.model_dump() for s in body.stages],
        ticket=body.ticket,
        reason=body.change_reason,
    )
    if isinstance(result, ProtectedChange):
        return _pending(ctx, result)
    return _pipeline(ctx, service)


@router.get("/pipelines/{service}", response_model=PipelineOut)
def get_pipeline(
    service: Annotated[str, Path(min_length=1, max_length=128)], ctx: CtxDep
) -> PipelineOut:
    """The stages in order, each with the deployment it runs now."""
    return _pipeline(ctx, service)


@router.get("/pipelines/{service}/timeline", response_model=list[TimelineOut])
def timeline(
    service: Annotated[str, Path(min_length=1, max_length=128)],
    ctx: CtxDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[TimelineOut]:
    return [
        TimelineOut(**pipelines.timeline_snapshot(r))
        for r in pipelines.timeline(ctx, service, limit)
    ]


@router.post("/versions", response_model=VersionOut, status_code=201)
def register_version(body: VersionIn, ctx: CtxDep) -> VersionOut:
    row = pipelines.register_version(ctx, body.service, body.artifact, body.digest, body.author)
    return VersionOut(**pipelines.version_snapshot(row))


@router.post("/versions/author", response_model=VersionOut)
def name_version_author(body: VersionAuthorIn, ctx: CtxDep) -> VersionOut:
    """Name the author of a version registered without one; a known author is kept."""
    row = pipelines.name_author(ctx, body.service, body.version, body.author)
    return VersionOut(**pipelines.version_snapshot(row))


@router.get("/versions", response_model=list[VersionOut])
def list_versions(service: ServiceQ, ctx: CtxDep) -> list[VersionOut]:
    return [
        VersionOut(**pipelines.version_snapshot(r)) for r in pipelines.list_versions(ctx, service)
    ]


@router.post(
    "/tests",
    response_model=TestRunOut,
    status_code=201,
    openapi_extra=upload_body("application/xml"),
)
async def upload_tests(
    request: Request, service: ServiceQ, version: NameQ, suite: NameQ, ctx: CtxDep
) -> TestRunOut:
    """A JUnit XML report of ``suite`` run against ``version`` (a digest or artifact id):
    the XML as the body, or as the ``file`` part of a multipart form."""
    data = await read_upload(request, "JUnit XML")
    row = await run_in_threadpool(pipelines.upload_tests, ctx, service, version, suite, data)
    return TestRunOut(**pipelines.test_run_snapshot(row))


@router.get("/tests", response_model=list[TestRunOut])
def list_tests(service: ServiceQ, version: NameQ, ctx: CtxDep) -> list[TestRunOut]:
    digest = pipelines.get_version(ctx, service, version).digest
    return [
        TestRunOut(**pipelines.test_run_snapshot(r))
        for r in pipelines.test_runs(ctx, service, digest)
    ]


# --- the gate, promotions and approvals -----------------------------------------------


@router.get("/gate", response_model=DecisionOut)
def gate(
    service: ServiceQ,
    stage: NameQ,
    version: NameQ,
    ctx: CtxDep,
    at: Annotated[datetime | None, Query(description="ISO 8601 instant; default now")] = None,
    drill: bool = False,
) -> DecisionOut:
    """OPEN (allowed) or BLOCKED: every blocker with how to clear it, and the block
    window's next transition, computed from the stored model at this instant."""
    if at is not None and at.tzinfo is None:
        raise InvalidInput("at: the instant must carry a time zone", details={"field": "at"})
    return _decision(pipelines.gate(ctx, service, stage, version, at, drill=drill))


@router.post("/promotions", response_model=PromotionOut)
def promote(body: PromotionIn, ctx: CtxDep) -> PromotionOut:
    """Promote now: every gate is checked again. A blocked promotion deploys nothing and is
    refused (409 ``promotion_blocked``, the gate's answer as ``details``); a drill that
    passes answers with ``deployment`` null."""
    decision, row = pipelines.promote_or_refuse(
        ctx, body.service, body.stage, body.version, drill=body.drill
    )
    return PromotionOut(
        decision=_decision(decision),
        deployment=DeploymentOut(**pipelines.deployment_snapshot(row)) if row else None,
    )


@router.post("/approvals", response_model=StageApprovalOut, status_code=201)
def approve_stage(body: StageApprovalIn, ctx: CtxDep) -> StageApprovalOut:
    row = pipelines.approve_stage(ctx, body.service, body.stage, body.version, body.comment)
    return StageApprovalOut(**pipelines.stage_approval_snapshot(row))


# --- block windows --------------------------------------------------------------------


@router.get("/windows", response_model=list[WindowOut])
def list_windows(
    ctx: CtxDep,
    service: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    stage: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> list[WindowOut]:
    return [WindowOut(**windows.snapshot(r)) for r in windows.list_windows(ctx, service, stage)]


@router.post("/windows", response_model=WindowOut, status_code=201)
def create_window(body: WindowIn, ctx: CtxDep) -> WindowOut:
    row = windows.create_window(ctx, body.scope, body.target, body.definition, body.reason, body.id)
    return WindowOut(**windows.snapshot(row))


@router.post("/windows/freeze", response_model=WindowOut, status_code=201)
def freeze(body: FreezeIn, ctx: CtxDep) -> WindowOut:
    """An ad-hoc freeze from now until ``until``; it expires by itself."""
    return WindowOut(
        **windows.snapshot(windows.freeze(ctx, body.scope, body.target, body.until, body.reason))
    )


@router.post(
    "/windows/import",
    response_model=list[WindowOut],
    status_code=201,
    openapi_extra={"requestBody": {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
)
async def import_windows(
    request: Request,
    scope: Annotated[ScopeKind, Query()],
    target: Annotated[str, Query(min_length=1, max_length=400)],
    ctx: CtxDep,
    tz: Annotated[str, Query(min_length=1, max_length=64)] = "UTC",
) -> list[WindowOut]:
    """Every event of an iCalendar document (body or ``file`` part) as a window, all or none."""
    data = await read_upload(request, "iCalendar document")
    rows = await run_in_threadpool(windows.import_ical, ctx, scope, target, data, tz)
    return [WindowOut(**windows.snapshot(r)) for r in rows]


@router.get(
    "/windows/export.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
)
def export_windows(
    ctx: CtxDep,
    service: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    stage: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Response:
    return Response(
        windows.export_ical(ctx, service, stage), media_type="text/calendar; charset=utf-8"
    )


@router.get("/windows/{window_id}", response_model=WindowOut)
def get_window(window_id: WindowId, ctx: CtxDep) -> WindowOut:
    return WindowOut(**windows.snapshot(windows.get_window(ctx, window_id)))


class WindowUpdateIn(ProtectedIn):
    definition: dict[str, Any]
    reason: Text | None = Field(default=None, max_length=2000)


@router.put("/windows/{window_id}", response_model=WindowOut, responses=PENDING_CHANGE_RESPONSE)
def update_window(
    window_id: WindowId, body: WindowUpdateIn, ctx: CtxDep
) -> WindowOut | JSONResponse:
    """Replace the window's rule (and reason); its scope stays. Making a window in force (or
    starting within a day) block less needs a leader and a ticket; when it lifts the block
    in force now it is stored for a second leader (202 with the request)."""
    result = windows.update_window(
        ctx,
        window_id,
        body.definition,
        body.reason,
        ticket=body.ticket,
        change_reason=body.change_reason,
    )
    if isinstance(result, ProtectedChange):
        return _pending(ctx, result)
    return WindowOut(**windows.snapshot(result))


@router.delete(
    "/windows/{window_id}",
    status_code=204,
    response_class=Response,
    responses=PENDING_CHANGE_RESPONSE,
)
def delete_window(
    window_id: WindowId,
    ctx: CtxDep,
    ticket: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    reason: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
) -> Response:
    """Delete the window. A window in force or starting within a day needs a leader and a
    ticket; one in force now is deleted only once a second leader approves (202)."""
    pending = windows.delete_window(ctx, window_id, ticket=ticket, reason=reason)
    if pending is not None:
        return _pending(ctx, pending)
    return Response(status_code=204)


# --- protected changes ----------------------------------------------------------------


class ProtectedApproveIn(Input):
    digest: Name = Field(description="The digest of the proposal you were shown")
    comment: Text = Field(default="", max_length=2000)


def _change(ctx: Ctx, row: ProtectedChange) -> ProtectedChangeOut:
    return ProtectedChangeOut(**changes.describe(ctx, row))


def _pending(ctx: Ctx, row: ProtectedChange) -> JSONResponse:
    return JSONResponse(_change(ctx, row).model_dump(), status_code=202)


@router.get("/changes", response_model=list[ProtectedChangeOut])
def list_changes(
    ctx: CtxDep,
    service: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    open_only: bool = False,
) -> list[ProtectedChangeOut]:
    """Protected changes waiting for (or decided by) a second leader."""
    return [_change(ctx, r) for r in changes.list_changes(ctx, service, open_only)]


@router.get("/changes/{change_id}", response_model=ProtectedChangeOut)
def get_change(change_id: RowId, ctx: CtxDep) -> ProtectedChangeOut:
    return _change(ctx, changes.get(ctx, change_id))


@router.post("/changes/{change_id}/approve", response_model=ProtectedChangeOut)
def approve_change(change_id: RowId, body: ProtectedApproveIn, ctx: CtxDep) -> ProtectedChangeOut:
    """A second leader approves exactly the proposal shown; it is applied at once."""
    return _change(ctx, changes.approve(ctx, change_id, digest=body.digest, comment=body.comment))


@router.post("/changes/{change_id}/deny", response_model=ProtectedChangeOut)
def deny_change(change_id: RowId, body: BreakGlassDenyIn, ctx: CtxDep) -> ProtectedChangeOut:
    return _change(ctx, changes.deny(ctx, change_id, body.reason))


# --- break-glass ----------------------------------------------------------------------


def _breakglass(ctx: Ctx, row: Any) -> BreakGlassOut:
    return BreakGlassOut(**breakglass.describe(ctx, row))


@router.post("/breakglass", response_model=BreakGlassOut, status_code=201)
def request_breakglass(body: BreakGlassIn, ctx: CtxDep) -> BreakGlassOut:
    """Ask to promote this exact version through a block window (the only blocker)."""
    row = breakglass.request(
        ctx,
        body.service,
        body.stage,
        body.version,
        body.reason,
        body.ticket,
        drill=body.drill,
        request_ttl_minutes=body.request_ttl_minutes,
        grant_ttl_minutes=body.grant_ttl_minutes,
    )
    return _breakglass(ctx, row)


@router.get("/breakglass", response_model=list[BreakGlassOut])
def list_breakglass(
    ctx: CtxDep,
    service: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    open_only: bool = False,
) -> list[BreakGlassOut]:
    return [_breakglass(ctx, r) for r in breakglass.list_requests(ctx, service, open_only)]


@router.get("/breakglass/{request_id}", response_model=BreakGlassOut)
def get_breakglass(request_id: RowId, ctx: CtxDep) -> BreakGlassOut:
    return _breakglass(ctx, breakglass.get(ctx, request_id))


@router.post("/breakglass/{request_id}/approve", response_model=BreakGlassOut)
def approve_breakglass(request_id: RowId, body: BreakGlassApproveIn, ctx: CtxDep) -> BreakGlassOut:
    """Approve exactly the promotion you were shown (service, stage, digest)."""
    row = breakglass.approve(
        ctx,
        request_id,
        service=body.service,
        stage=body.stage,
        digest=body.digest,
        comment=body.comment,
    )
    return _breakglass(ctx, row)


@router.post("/breakglass/{request_id}/deny", response_model=BreakGlassOut)
def deny_breakglass(request_id: RowId, body: BreakGlassDenyIn, ctx: CtxDep) -> BreakGlassOut:
    return _breakglass(ctx, breakglass.deny(ctx, request_id, body.reason))


@router.post("/breakglass/{request_id}/lift-denial", response_model=BreakGlassOut)
def lift_breakglass_denial(request_id: RowId, body: BreakGlassDenyIn, ctx: CtxDep) -> BreakGlassOut:
    """A leader lets the requester of a denied request ask again for that version."""
    return _breakglass(ctx, breakglass.lift_denial(ctx, request_id, body.reason))


@router.post("/breakglass/{request_id}/revoke", response_model=BreakGlassOut)
def revoke_breakglass(request_id: RowId, ctx: CtxDep) -> BreakGlassOut:
    return _breakglass(ctx, breakglass.revoke(ctx, request_id))


@router.get("/reviews", response_model=list[ReviewOut])
def list_reviews(ctx: CtxDep, open_only: bool = True) -> list[ReviewOut]:
    return [
        ReviewOut(**breakglass.review_snapshot(r)) for r in breakglass.list_reviews(ctx, open_only)
    ]


@router.post("/reviews/{review_id}/close", response_model=ReviewOut)
def close_review(review_id: RowId, body: ReviewCloseIn, ctx: CtxDep) -> ReviewOut:
    """Record what happened and why; the follow-up review is closed."""
    row = breakglass.close_review(ctx, review_id, body.what_happened, body.why)
    return ReviewOut(**breakglass.review_snapshot(row))
