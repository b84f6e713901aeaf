"""HTTP API of the flags mechanism (`/api/v1/flags/…`) and its OFREP endpoints
(`/sdk/{app}/{environment}/ofrep/v1/…`), which any OpenFeature OFREP provider can use
with `base_url = http://host/sdk/{app}/{environment}`."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.flags import deployments, service
from mechanisms.flags.domain import FLAG_NOT_FOUND, RuleSet
from mechanisms.flags.ofrep import (
    OfrepFastPath,
    context_of,
    engine_cache,
    failure_body,
    success_body,
)
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

management = APIRouter(prefix="/api/v1/flags", route_class=UnitOfWorkRoute, tags=["flags"])
ofrep = APIRouter(
    prefix="/sdk/{app}/{environment}/ofrep/v1", route_class=UnitOfWorkRoute, tags=["ofrep"]
)
CtxDep = Annotated[Ctx, Depends(request_ctx)]
Key = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
FlagTypeName = Literal["boolean", "string", "number", "object"]
FlagKindName = Literal["release", "experiment", "operational", "permission", "kill_switch"]


# --- schemas ------------------------------------------------------------------------


class EnvironmentIn(Input):
    key: Key
    name: Text = Field(default="", max_length=200)
    requires_approval: bool = False


class EnvironmentOut(BaseModel):
    key: str
    name: str
    position: int
    requires_approval: bool
    holdout_percent: float
    revision: int


class AppIn(Input):
    key: Key
    name: Text = Field(default="", max_length=200)
    owner_team: Text = Field(max_length=64)
    environments: list[EnvironmentIn] | None = Field(default=None, min_length=1, max_length=20)


class AppOut(BaseModel):
    key: str
    name: str
    owner_team_id: int
    environments: list[EnvironmentOut]


class HoldoutIn(Input):
    percent: float = Field(ge=0, le=50)


class FlagIn(Input):
    key: Key
    type: FlagTypeName = "boolean"
    kind: FlagKindName = "release"
    description: Text = Field(default="", max_length=5000)
    owner_team: Text | None = Field(default=None, max_length=64)
    variants: dict[str, Any] | None = Field(default=None, max_length=100)
    off_variant: Text | None = Field(default=None, max_length=128)
    json_schema: dict[str, Any] | None = None
    stale_after_days: int = Field(default=30, ge=1, le=3650)


class DeploymentOut(BaseModel):
    id: int
    environment: str
    from_number: int
    to_number: int
    strategy: str
    state: str
    percent: float
    step: int
    started_at: datetime
    next_step_at: datetime | None
    finished_at: datetime | None
    monitors: dict[str, Any]
    reason: str | None
    created_by: str


class FlagEnvironmentState(BaseModel):
    environment: str
    live_number: int
    enabled: bool
    single_value: str | None
    stale: bool
    served_since: datetime
    deployment: DeploymentOut | None


class FlagOut(BaseModel):
    key: str
    type: str
    kind: str
    description: str
    owner_team_id: int
    json_schema: dict[str, Any] | None
    stale_after_days: int
    archived: bool
    environments: list[FlagEnvironmentState]


class VersionOut(BaseModel):
    number: int
    config: dict[str, Any]
    author: str
    comment: str
    created_at: datetime


class ChangeRequestOut(BaseModel):
    id: int
    flag: str
    environment: str
    base_number: int
    config: dict[str, Any]
    strategy: str
    comment: str
    state: str
    requested_by: str
    decided_by: str | None
    decision_note: str | None
    created_at: datetime


class ConfigIn(Input):
    config: dict[str, Any]
    comment: Text = Field(default="", max_length=2000)
    base_number: int | None = Field(default=None, ge=1, le=2**31)
    strategy: Text = Field(default="AllAtOnce", max_length=128)
    monitors: dict[str, Any] = Field(default_factory=dict)


class ConfigChangeOut(BaseModel):
    version: VersionOut | None
    deployment: DeploymentOut | None
    change_request: ChangeRequestOut | None


class DeployIn(Input):
    number: int = Field(ge=1, le=2**31)
    strategy: Text = Field(default="AllAtOnce", max_length=128)
    monitors: dict[str, Any] = Field(default_factory=dict)


class StepOut(BaseModel):
    at: datetime
    percent: float
    state: str
    note: str


class DeploymentDetailOut(DeploymentOut):
    flag: str
    steps: list[StepOut]


class ReasonIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)


class NoteIn(Input):
    note: Text = Field(default="", max_length=2000)


class RestoreIn(Input):
    strategy: Text = Field(default="AllAtOnce", max_length=128)


class SegmentIn(Input):
    definition: dict[str, Any]
    description: Text | None = Field(
        default=None, max_length=2000, description="omit to keep the current one"
    )


class SegmentOut(BaseModel):
    key: str
    description: str
    definition: dict[str, Any]
    updated_at: datetime


class LayerIn(Input):
    key: Key


class PlacementIn(Input):
    layer: Key
    percent: float = Field(gt=0, le=100)


class StrategyIn(Input):
    name: Key
    description: Text = Field(default="", max_length=2000)
    definition: dict[str, Any]


class StrategyOut(BaseModel):
    name: str
    description: str
    definition: dict[str, Any]
    predefined: bool
    total_seconds: int


# --- conversions --------------------------------------------------------------------


def _env_key(ctx: Ctx, environment_id: int) -> str:
    from mechanisms.flags.tables import FlagEnvironment

    return ctx.session.get(FlagEnvironment, environment_id).key


def _deployment_out(ctx: Ctx, dep: Any) -> DeploymentOut:
    return DeploymentOut(
        id=dep.id,
        environment=_env_key(ctx, dep.environment_id),
        from_number=dep.from_number,
        to_number=dep.to_number,
        strategy=dep.strategy_name,
        state=dep.state,
        percent=dep.percent,
        step=dep.step,
        started_at=dep.started_at,
        next_step_at=dep.next_step_at,
        finished_at=dep.finished_at,
        monitors=dep.monitors,
        reason=dep.reason,
        created_by=dep.created_by,
    )


def _version_out(version: Any) -> VersionOut:
    return VersionOut(
        number=version.number,
        config=version.config,
        author=version.author,
        comment=version.comment,
        created_at=version.created_at,
    )


def _change_request_out(ctx: Ctx, request: Any) -> ChangeRequestOut:
    from mechanisms.flags.tables import Flag

    return ChangeRequestOut(
        id=request.id,
        flag=ctx.session.get(Flag, request.flag_id).key,
        environment=_env_key(ctx, request.environment_id),
        base_number=request.base_number,
        config=request.config,
        strategy=request.strategy_name,
        comment=request.comment,
        state=request.state,
        requested_by=request.requested_by,
        decided_by=request.decided_by,
        decision_note=request.decision_note,
        created_at=request.created_at,
    )


def _app_out(ctx: Ctx, app: Any) -> AppOut:
    return AppOut(
        key=app.key,
        name=app.name,
        owner_team_id=app.owner_team_id,
        environments=[
            EnvironmentOut(**service.env_snapshot(e))
            for e in service.environments(ctx.session, app)
        ],
    )


def _flag_out(ctx: Ctx, app_key: str, flag: Any) -> FlagOut:
    states = [s for s in service.statuses(ctx, app_key) if s.flag.id == flag.id]
    return FlagOut(
        **{k: v for k, v in service.flag_snapshot(flag).items()},
        environments=[
            FlagEnvironmentState(
                environment=s.environment,
                live_number=s.live_number,
                enabled=s.enabled,
                single_value=s.single_value,
                stale=s.stale,
                served_since=s.served_since,
                deployment=_deployment_out(ctx, s.deployment) if s.deployment else None,
            )
            for s in states
        ],
    )


def _change_out(ctx: Ctx, change: service.ConfigChange) -> ConfigChangeOut:
    return ConfigChangeOut(
        version=_version_out(change.version) if change.version else None,
        deployment=_deployment_out(ctx, change.deployment) if change.deployment else None,
        change_request=_change_request_out(ctx, change.change_request)
        if change.change_request
        else None,
    )


# --- applications and environments --------------------------------------------------


@management.get("/apps", response_model=list[AppOut])
def list_apps(ctx: CtxDep) -> list[AppOut]:
    return [_app_out(ctx, a) for a in service.list_apps(ctx)]


@management.post("/apps", response_model=AppOut, status_code=201)
def create_app(body: AppIn, ctx: CtxDep) -> AppOut:
    envs = (
        [(e.key, e.name or e.key, e.requires_approval) for e in body.environments]
        if body.environments
        else None
    )
    return _app_out(ctx, service.create_app(ctx, body.key, body.name, body.owner_team, envs))


@management.get("/apps/{app}", response_model=AppOut)
def get_app(app: str, ctx: CtxDep) -> AppOut:
    service.can_read(ctx)
    return _app_out(ctx, service.get_app(ctx, app))


@management.post("/apps/{app}/environments", response_model=EnvironmentOut, status_code=201)
def add_environment(app: str, body: EnvironmentIn, ctx: CtxDep) -> EnvironmentOut:
    env = service.add_environment(ctx, app, body.key, body.name or body.key, body.requires_approval)
    return EnvironmentOut(**service.env_snapshot(env))


@management.put("/apps/{app}/environments/{environment}/holdout", response_model=EnvironmentOut)
def set_holdout(app: str, environment: str, body: HoldoutIn, ctx: CtxDep) -> EnvironmentOut:
    return EnvironmentOut(
        **service.env_snapshot(service.set_holdout(ctx, app, environment, body.percent))
    )


# --- flags, versions, deployments ---------------------------------------------------


@management.get("/apps/{app}/flags", response_model=list[FlagOut])
def list_flags(app: str, ctx: CtxDep, archived: bool = False) -> list[FlagOut]:
    return [_flag_out(ctx, app, f) for f in service.list_flags(ctx, app, include_archived=archived)]


@management.post("/apps/{app}/flags", response_model=FlagOut, status_code=201)
def create_flag(app: str, body: FlagIn, ctx: CtxDep) -> FlagOut:
    flag = service.create_flag(
        ctx,
        app,
        body.key,
        flag_type=body.type,
        kind=body.kind,
        description=body.description,
        owner_team=body.owner_team,
        variants=body.variants,
        off_variant=body.off_variant,
        json_schema=body.json_schema,
        stale_after_days=body.stale_after_days,
    )
    return _flag_out(ctx, app, flag)


@management.get("/apps/{app}/flags/{flag}", response_model=FlagOut)
def get_flag(app: str, flag: str, ctx: CtxDep) -> FlagOut:
    service.can_read(ctx)
    return _flag_out(ctx, app, service.get_flag(ctx, service.get_app(ctx, app), flag))


@management.put(
    "/apps/{app}/flags/{flag}/environments/{environment}/config", response_model=ConfigChangeOut
)
def set_config(
    app: str, flag: str, environment: str, body: ConfigIn, ctx: CtxDep
) -> ConfigChangeOut:
    change = service.set_config(
        ctx,
        app,
        flag,
        environment,
        body.config,
        comment=body.comment,
        base_number=body.base_number,
        strategy=body.strategy,
        monitors=body.monitors,
    )
    return _change_out(ctx, change)


@management.get(
    "/apps/{app}/flags/{flag}/environments/{environment}/versions", response_model=list[VersionOut]
)
def list_versions(app: str, flag: str, environment: str, ctx: CtxDep) -> list[VersionOut]:
    return [_version_out(v) for v in service.versions(ctx, app, flag, environment)]


@management.post(
    "/apps/{app}/flags/{flag}/environments/{environment}/versions/{number}/restore",
    response_model=ConfigChangeOut,
)
def restore_version(
    app: str, flag: str, environment: str, number: int, body: RestoreIn, ctx: CtxDep
) -> ConfigChangeOut:
    return _change_out(ctx, service.restore(ctx, app, flag, environment, number, body.strategy))


@management.get("/apps/{app}/flags/{flag}/deployments", response_model=list[DeploymentOut])
def list_deployments(
    app: str,
    flag: str,
    ctx: CtxDep,
    environment: Annotated[str | None, Query(max_length=64)] = None,
) -> list[DeploymentOut]:
    return [_deployment_out(ctx, d) for d in deployments.deployments(ctx, app, flag, environment)]


@management.post(
    "/apps/{app}/flags/{flag}/environments/{environment}/deployments",
    response_model=DeploymentOut,
    status_code=201,
)
def deploy(app: str, flag: str, environment: str, body: DeployIn, ctx: CtxDep) -> DeploymentOut:
    dep = deployments.deploy(ctx, app, flag, environment, body.number, body.strategy, body.monitors)
    return _deployment_out(ctx, dep)


@management.get("/deployments/{deployment_id}", response_model=DeploymentDetailOut)
def get_deployment(deployment_id: int, ctx: CtxDep) -> DeploymentDetailOut:
    from mechanisms.flags.tables import Flag

    service.can_read(ctx)
    dep = deployments.get_visible(ctx, deployment_id)
    steps = [
        StepOut(at=s.at, percent=s.percent, state=s.state, note=s.note)
        for s in deployments.deployment_steps(ctx, dep.id)
    ]
    return DeploymentDetailOut(
        **_deployment_out(ctx, dep).model_dump(),
        flag=ctx.session.get(Flag, dep.flag_id).key,
        steps=steps,
    )


@management.post("/deployments/{deployment_id}/rollback", response_model=DeploymentOut)
def rollback(deployment_id: int, body: ReasonIn, ctx: CtxDep) -> DeploymentOut:
    return _deployment_out(ctx, deployments.rollback(ctx, deployment_id, body.reason))


@management.post("/apps/{app}/flags/{flag}/kill", response_model=list[VersionOut])
def kill(app: str, flag: str, body: ReasonIn, ctx: CtxDep) -> list[VersionOut]:
    return [_version_out(v) for v in deployments.kill(ctx, app, flag, body.reason)]


@management.post("/apps/{app}/flags/{flag}/archive", response_model=FlagOut)
def archive(app: str, flag: str, ctx: CtxDep) -> FlagOut:
    return _flag_out(ctx, app, service.archive(ctx, app, flag))


@management.put("/apps/{app}/flags/{flag}/layer", response_model=FlagOut)
def place_in_layer(app: str, flag: str, body: PlacementIn, ctx: CtxDep) -> FlagOut:
    return _flag_out(ctx, app, service.place_in_layer(ctx, app, flag, body.layer, body.percent))


@management.delete("/apps/{app}/flags/{flag}/layer", response_model=FlagOut)
def leave_layer(app: str, flag: str, ctx: CtxDep) -> FlagOut:
    return _flag_out(ctx, app, service.place_in_layer(ctx, app, flag, None))


# --- change requests ----------------------------------------------------------------


@management.get("/apps/{app}/change-requests", response_model=list[ChangeRequestOut])
def list_change_requests(
    app: str,
    ctx: CtxDep,
    state: Literal["open", "applied", "rejected", "invalidated"] | None = "open",
) -> list[ChangeRequestOut]:
    return [_change_request_out(ctx, r) for r in service.change_requests(ctx, app, state)]


@management.post("/change-requests/{request_id}/approve", response_model=ConfigChangeOut)
def approve(request_id: int, body: NoteIn, ctx: CtxDep) -> ConfigChangeOut:
    return _change_out(ctx, service.approve_change(ctx, request_id, body.note))


@management.post("/change-requests/{request_id}/reject", response_model=ChangeRequestOut)
def reject(request_id: int, body: NoteIn, ctx: CtxDep) -> ChangeRequestOut:
    return _change_request_out(ctx, service.reject_change(ctx, request_id, body.note))


# --- segments, layers, strategies --------------------------------------------------


@management.get("/apps/{app}/segments", response_model=list[SegmentOut])
def list_segments(app: str, ctx: CtxDep) -> list[SegmentOut]:
    return [
        SegmentOut(
            key=s.key, description=s.description, definition=s.definition, updated_at=s.updated_at
        )
        for s in service.list_segments(ctx, app)
    ]


@management.put("/apps/{app}/segments/{key}", response_model=SegmentOut)
def set_segment(app: str, key: str, body: SegmentIn, ctx: CtxDep) -> SegmentOut:
    s = service.set_segment(ctx, app, key, body.definition, body.description)
    return SegmentOut(
        key=s.key, description=s.description, definition=s.definition, updated_at=s.updated_at
    )


@management.delete("/apps/{app}/segments/{key}", status_code=204)
def delete_segment(app: str, key: str, ctx: CtxDep) -> None:
    service.delete_segment(ctx, app, key)


@management.post("/apps/{app}/layers", status_code=201, response_model=dict[str, str])
def create_layer(app: str, body: LayerIn, ctx: CtxDep) -> dict[str, str]:
    return {"key": service.create_layer(ctx, app, body.key).key}


@management.get("/strategies", response_model=list[StrategyOut])
def list_strategies(ctx: CtxDep) -> list[StrategyOut]:
    from mechanisms.flags.rollout import total_seconds

    return [
        StrategyOut(
            name=name,
            description=desc,
            definition=s.model_dump(mode="json"),
            predefined=predefined,
            total_seconds=total_seconds(s),
        )
        for name, desc, s, predefined in deployments.list_strategies(ctx)
    ]


@management.post("/strategies", response_model=StrategyOut, status_code=201)
def create_strategy(body: StrategyIn, ctx: CtxDep) -> StrategyOut:
    from mechanisms.flags.rollout import Strategy, total_seconds

    row = deployments.create_strategy(ctx, body.name, body.definition, body.description)
    return StrategyOut(
        name=row.name,
        description=row.description,
        definition=row.definition,
        predefined=False,
        total_seconds=total_seconds(Strategy.model_validate(row.definition)),
    )


# --- the rule set for SDKs ----------------------------------------------------------


def _current_ruleset(ctx: Ctx, app_key: str, env_key: str) -> tuple[str, RuleSet]:
    service.can_read(ctx)
    app = service.get_app(ctx, app_key)
    env = service.get_environment(ctx, app, env_key)
    return service.etag(app, env), service.ruleset(ctx.session, app, env)


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    return if_none_match.strip() == "*" or etag in [
        t.strip().removeprefix("W/") for t in if_none_match.split(",")
    ]


@management.get(
    "/apps/{app}/environments/{environment}/ruleset",
    response_model=RuleSet,
    responses={304: {"description": "the rule set has not changed since the ETag sent"}},
)
def get_ruleset(
    app: str,
    environment: str,
    ctx: CtxDep,
    if_none_match: Annotated[str | None, Header(max_length=500)] = None,
) -> Response:
    tag, ruleset = _current_ruleset(ctx, app, environment)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if _etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(ruleset.model_dump_json(), media_type="application/json", headers=headers)


@management.get(
    "/apps/{app}/environments/{environment}/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "server-sent events: one `ruleset` event per change",
        }
    },
)
def stream_ruleset(app: str, environment: str, request: Request, ctx: CtxDep) -> StreamingResponse:
    """Server-sent events: the rule set now, then again after every change."""
    service.can_read(ctx)
    found = service.get_app(ctx, app)
    service.get_environment(ctx, found, environment)
    db = request.app.state.db
    clock = request.app.state.clock

    def snapshot(last_tag: str | None) -> tuple[str, str | None]:
        with db.transaction(write=False) as session:
            reader = Ctx(session, system_principal("sdk-stream"), clock.now())
            a = service.get_app(reader, app)
            env = service.get_environment(reader, a, environment)
            tag = service.etag(a, env)
            if tag == last_tag:
                return tag, None
            return tag, service.ruleset(session, a, env).model_dump_json()

    async def events() -> Any:
        last: str | None = None
        idle = 0.0
        while not await request.is_disconnected():
            tag, body = await run_in_threadpool(snapshot, last)
            if body is not None:
                last, idle = tag, 0.0
                yield f"event: ruleset\nid: {tag}\ndata: {body}\n\n"
            elif idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(1.0)
            idle += 1.0

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


# --- OFREP --------------------------------------------------------------------------


class OfrepRequest(BaseModel):
    context: dict[str, Any] | None = None


def _require_evaluator(ctx: Ctx, app_key: str) -> None:
    """A credential, and one of the organisation that owns the application (item 8 of #14:
    the bulk route once answered every flag of any application to anyone)."""
    service.can_read(ctx)
    service.get_app(ctx, app_key)


async def _ofrep_context(request: Request, key: str | None) -> dict[str, Any] | JSONResponse:
    context = context_of(await request.body())
    if isinstance(context, tuple):
        body = {"errorCode": context[0], "errorDetails": context[1]}
        return JSONResponse({"key": key, **body} if key else body, status_code=400)
    return context


OFREP_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad evaluation request (OFREP evaluationFailure)"},
    401: {"description": "no valid token"},
    403: {"description": "not allowed"},
    404: {"description": "flag not found (OFREP flagNotFound)"},
}


@ofrep.post(
    "/evaluate/flags/{key}",
    responses=OFREP_RESPONSES,
    openapi_extra={
        # Evaluation is a POST by protocol and only reads: any evaluator, a viewer too.
        "x-mech-read-only": True,
        "requestBody": {
            "content": {"application/json": {"schema": OfrepRequest.model_json_schema()}}
        },
    },
)
async def ofrep_single(
    app: str, environment: str, key: str, request: Request, ctx: CtxDep
) -> JSONResponse:
    """Answered by ``mechanisms.flags.ofrep.OfrepFastPath`` before routing; this route
    documents the contract and serves an app assembled without the fast path."""
    await run_in_threadpool(_require_evaluator, ctx, app)
    context = await _ofrep_context(request, key)
    if isinstance(context, JSONResponse):
        return context
    state = request.app.state
    rules = await engine_cache(state).get(state.db, state.clock, app, environment)
    result = rules.engine.evaluate(key, context)
    if result.error_code == FLAG_NOT_FOUND:
        return JSONResponse(failure_body(result), status_code=404)
    if result.is_error:
        return JSONResponse(failure_body(result), status_code=400)
    return JSONResponse(success_body(result))


@ofrep.post(
    "/evaluate/flags",
    responses={**OFREP_RESPONSES, 304: {"description": "nothing changed since the ETag sent"}},
    openapi_extra={
        # Evaluation is a POST by protocol and only reads: any evaluator, a viewer too.
        "x-mech-read-only": True,
        "requestBody": {
            "content": {"application/json": {"schema": OfrepRequest.model_json_schema()}}
        },
    },
)
async def ofrep_bulk(
    app: str,
    environment: str,
    request: Request,
    ctx: CtxDep,
    if_none_match: Annotated[str | None, Header(max_length=500)] = None,
) -> Response:
    await run_in_threadpool(_require_evaluator, ctx, app)
    context = await _ofrep_context(request, None)
    if isinstance(context, JSONResponse):
        return context
    state = request.app.state
    rules = await engine_cache(state).get(state.db, state.clock, app, environment)
    tag, engine = rules.etag, rules.engine
    # The same rule set and the same context give the same answers: tag both.
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
    body_tag = f'"{tag.strip(chr(34))}.{digest}"'
    if _etag_matches(if_none_match, body_tag):
        return Response(status_code=304, headers={"ETag": body_tag})
    # Every flag against a context up to the body limit: off the event loop, so /healthz
    # and the single-flag fast path never wait behind it.
    results = await run_in_threadpool(engine.evaluate_all, context)
    flags = [failure_body(r) if r.is_error else success_body(r) for r in results]
    return JSONResponse({"flags": flags}, headers={"ETag": body_tag})


@ofrep.get("/configuration")
def ofrep_configuration(app: str, environment: str, ctx: CtxDep) -> JSONResponse:
    service.can_read(ctx)
    service.get_environment(ctx, service.get_app(ctx, app), environment)
    return JSONResponse(
        {
            "name": "mechanisms",
            "capabilities": {
                "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": 1000}},
                "flagEvaluation": {
                    "supportedTypes": ["boolean", "string", "int", "float", "object"]
                },
            },
        }
    )


# --- experiments --------------------------------------------------------------------


class MetricIn(Input):
    name: Key
    kind: Literal["conversion", "numeric"] = "numeric"
    higher_is_better: bool = True
    guardrail: dict[str, Any] | None = None


class ExperimentIn(Input):
    control: Text = Field(max_length=128)
    metrics: list[MetricIn] = Field(min_length=1, max_length=20)
    hypothesis: Text = Field(default="", max_length=5000)


class ExperimentOut(BaseModel):
    id: int
    flag: str
    environment: str
    hypothesis: str
    control: str
    weights: dict[str, float]
    metrics: list[dict[str, Any]]
    state: str
    started_at: datetime
    ended_at: datetime | None
    decision: str | None
    decision_variant: str | None
    reason: str | None
    decided_by: str | None


class DecisionIn(Input):
    decision: Literal["ship", "rollback"]
    reason: Text = Field(min_length=1, max_length=5000)
    variant: Text | None = Field(default=None, max_length=128)
    strategy: Text = Field(default="Linear20PercentEvery6Minutes", max_length=128)


class ExposuresIn(Input):
    exposures: list[dict[str, Any]] = Field(max_length=1000)


class FeedbackIn(Input):
    events: list[dict[str, Any]] = Field(max_length=1000)


class Accepted(BaseModel):
    accepted: int


def _experiment_out(ctx: Ctx, e: Any) -> ExperimentOut:
    from mechanisms.flags.tables import Flag

    return ExperimentOut(
        id=e.id,
        flag=ctx.session.get(Flag, e.flag_id).key,
        environment=_env_key(ctx, e.environment_id),
        hypothesis=e.hypothesis,
        control=e.control_variant,
        weights=e.weights,
        metrics=e.metrics,
        state=e.state,
        started_at=e.started_at,
        ended_at=e.ended_at,
        decision=e.decision,
        decision_variant=e.decision_variant,
        reason=e.reason,
        decided_by=e.decided_by,
    )


def _dataclass_json(value: Any) -> Any:
    """Results are dataclasses of the stats module: plain JSON for the API."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dataclass_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _dataclass_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dataclass_json(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


@management.post(
    "/apps/{app}/flags/{flag}/environments/{environment}/experiments",
    response_model=ExperimentOut,
    status_code=201,
)
def start_experiment(
    app: str, flag: str, environment: str, body: ExperimentIn, ctx: CtxDep
) -> ExperimentOut:
    from mechanisms.flags import experiments

    metrics = [m.model_dump() for m in body.metrics]
    return _experiment_out(
        ctx,
        experiments.start(
            ctx,
            app,
            flag,
            environment,
            control=body.control,
            metrics=metrics,
            hypothesis=body.hypothesis,
        ),
    )


@management.get("/apps/{app}/experiments", response_model=list[ExperimentOut])
def list_experiments(
    app: str, ctx: CtxDep, flag: Annotated[str | None, Query(max_length=128)] = None
) -> list[ExperimentOut]:
    from mechanisms.flags import experiments

    return [_experiment_out(ctx, e) for e in experiments.list_for(ctx, app, flag)]


@management.get("/experiments/{experiment_id}", response_model=ExperimentOut)
def get_experiment(experiment_id: int, ctx: CtxDep) -> ExperimentOut:
    from mechanisms.flags import experiments

    return _experiment_out(ctx, experiments.get(ctx, experiment_id))


@management.get("/experiments/{experiment_id}/results", response_model=dict[str, Any])
def experiment_results(
    experiment_id: int, ctx: CtxDep, level: Annotated[float, Query(gt=0.5, lt=1)] = 0.95
) -> dict[str, Any]:
    from mechanisms.flags import experiments

    found = experiments.results(ctx, experiment_id, level)
    return {
        "experiment": _experiment_out(ctx, found.experiment).model_dump(mode="json"),
        "exposures": found.exposures,
        "sample_ratio": _dataclass_json(found.sample_ratio),
        "metrics": [
            {
                "metric": m.metric,
                "not_enough_data": m.not_enough_data,
                "analysis": _dataclass_json(m.analysis),
                "guardrails": _dataclass_json(m.guardrails),
            }
            for m in found.metrics
        ],
        "comments": found.comments,
    }


@management.post("/experiments/{experiment_id}/decision", response_model=ConfigChangeOut)
def decide_experiment(experiment_id: int, body: DecisionIn, ctx: CtxDep) -> ConfigChangeOut:
    from mechanisms.flags import experiments

    change = experiments.decide(
        ctx, experiment_id, body.decision, body.reason, variant=body.variant, strategy=body.strategy
    )
    return _change_out(ctx, change)


@management.post(
    "/apps/{app}/environments/{environment}/exposures", response_model=Accepted, status_code=202
)
def post_exposures(app: str, environment: str, body: ExposuresIn, ctx: CtxDep) -> Accepted:
    from mechanisms.flags import experiments

    return Accepted(accepted=experiments.record_exposures(ctx, app, environment, body.exposures))


@management.post(
    "/apps/{app}/environments/{environment}/feedback", response_model=Accepted, status_code=202
)
def post_feedback(app: str, environment: str, body: FeedbackIn, ctx: CtxDep) -> Accepted:
    from mechanisms.flags import experiments

    return Accepted(accepted=experiments.record_feedback(ctx, app, environment, body.events))


router = APIRouter()
router.include_router(management)
router.include_router(ofrep)
middleware = [OfrepFastPath]
