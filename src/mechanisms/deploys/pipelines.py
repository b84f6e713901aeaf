"""Pipelines, versions, test results, the gate, promotions, bakes and rollbacks.

``gate`` loads the domain ``Snapshot`` from storage at the instant asked and returns the
domain ``Decision`` (decision 0013): nothing is cached, so a window added a second ago or an
alarm that just fired is in the answer. ``promote`` asks the same gate again at the moment
of the promotion, spends a break-glass grant when one lifted the block window, and records
the deployment, which then bakes; the worker finishes bakes or rolls them back."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from mechanisms.core import accounts
from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict, Forbidden, InvalidInput, NotFound, RecordedRefusal
from mechanisms.core.identity import Role
from mechanisms.core.permissions import require_site_role, team_chain_cte
from mechanisms.core.tables import User
from mechanisms.deploys import access, changes, gates, junit, protection, windows
from mechanisms.deploys.approvals import Target
from mechanisms.deploys.tables import (
    Deployment,
    Pipeline,
    ProtectedChange,
    Stage,
    StageApproval,
    TestRun,
    TimelineEntry,
    Version,
)
from mechanisms.ops import alarms as ops_alarms
from mechanisms.ops.tables import OpsService

MAX_STAGES = 20
MAX_SUITES = 50
MAX_TEXT = 200
BAKING, SUCCEEDED, ROLLED_BACK = "baking", "succeeded", "rolled_back"


def _invalid(field: str, message: str, code: str = "invalid_input") -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code=code, details={"field": field})


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value or "/" in value:
        raise _invalid(field, "a non-empty name without '/' is required")
    if len(value) > MAX_TEXT:
        raise _invalid(field, f"at most {MAX_TEXT} characters")
    return value.strip()


def _names(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SUITES:
        raise _invalid(field, f"a list of up to {MAX_SUITES} names")
    return [_name(v, f"{field}[{i}]") for i, v in enumerate(value)]


# --- pipelines ------------------------------------------------------------------------


def _stage_spec(ctx: Ctx, spec: Any, i: int) -> dict[str, Any]:
    field = f"stages[{i}]"
    if not isinstance(spec, dict):
        raise _invalid(field, "an object with a name is required")
    bake = spec.get("bake_minutes", 0)
    if isinstance(bake, bool) or not isinstance(bake, int) or not 0 <= bake <= 7 * 24 * 60:
        raise _invalid(f"{field}.bake_minutes", "0 to 10080 minutes")
    alarm_names = _names(spec.get("alarms"), f"{field}.alarms")
    for j, alarm in enumerate(alarm_names):
        try:
            ops_alarms.get_alarm(ctx, alarm)
        except NotFound:
            raise _invalid(f"{field}.alarms[{j}]", f"no ops alarm is named {alarm!r}") from None
    approval = spec.get("approval")
    roles: list[str] | None = None
    count = 0
    if approval is not None:
        if not isinstance(approval, dict):
            raise _invalid(f"{field}.approval", "an object with roles and count")
        roles = _names(approval.get("roles"), f"{field}.approval.roles")
        unknown = [r for r in roles if r not in ("engineer", "leader", "admin")]
        if unknown or not roles:
            raise _invalid(f"{field}.approval.roles", "engineer, leader or admin")
        count = approval.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
            raise _invalid(f"{field}.approval.count", "1 to 10 approvers")
    return {
        "name": _name(spec.get("name"), f"{field}.name"),
        "required_suites": _names(spec.get("required_suites"), f"{field}.required_suites"),
        "bake_seconds": bake * 60,
        "alarms": alarm_names,
        "approval_roles": roles,
        "approval_count": count,
    }


def _domain_stage(row: Stage) -> gates.Stage:
    return gates.Stage(
        row.name,
        tuple(row.required_suites),
        timedelta(seconds=row.bake_seconds),
        gates.ApprovalRule(frozenset(row.approval_roles), row.approval_count)
        if row.approval_roles
        else None,
    )


def stages_of(ctx: Ctx, pipeline: Pipeline) -> list[Stage]:
    return list(
        ctx.session.execute(
            select(Stage).where(Stage.pipeline_id == pipeline.id).order_by(Stage.position)
        ).scalars()
    )


def stage_snapshot(row: Stage) -> dict[str, Any]:
    return {
        "name": row.name,
        "required_suites": list(row.required_suites),
        "bake_minutes": row.bake_seconds // 60,
        "alarms": list(row.alarms),
        "approval": {"roles": list(row.approval_roles), "count": row.approval_count}
        if row.approval_roles
        else None,
    }


def pipeline_snapshot(ctx: Ctx, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "service": pipeline.service_key,
        "stages": [stage_snapshot(s) for s in stages_of(ctx, pipeline)],
        "created_by": pipeline.created_by,
        "created_at": pipeline.created_at.isoformat(),
        "updated_at": pipeline.updated_at.isoformat(),
    }


def set_pipeline(
    ctx: Ctx,
    service: str,
    stages: Sequence[dict[str, Any]],
    *,
    ticket: str | None = None,
    reason: str | None = None,
) -> Pipeline | ProtectedChange:
    """Create or replace a service's pipeline: its stages in order (each name once).
    Lowering a stage's requirements or removing a stage is protected (``changes.guarded``):
    it may come back as a request waiting for a second leader instead of the pipeline."""
    require_site_role(ctx, Role.ENGINEER)
    owner = access.require_engineer(ctx, service)
    specs = _stage_specs(ctx, service, stages)
    pipeline = _find(ctx, service)
    if pipeline is None:
        return _replace_stages(ctx, owner, None, specs)
    current = [stage_snapshot(s) for s in stages_of(ctx, pipeline)]
    proposal = [stage_snapshot(Stage(**s)) for s in specs]
    verdict = protection.classify_pipeline(current, proposal, _blocked_now(ctx, pipeline))
    change = changes.Proposed(
        kind="pipeline_set",
        subject=service,
        team_id=owner.team_id,
        services=(service,),
        proposal={"stages": proposal},
        base={"stages": current},
    )
    return changes.guarded(
        ctx,
        change,
        verdict,
        lambda: _replace_stages(ctx, owner, pipeline, specs),
        ticket=ticket,
        reason=reason,
    )


def _stage_specs(ctx: Ctx, service: str, stages: Any) -> list[dict[str, Any]]:
    if not isinstance(stages, list | tuple) or not 1 <= len(stages) <= MAX_STAGES:
        raise _invalid("stages", f"1 to {MAX_STAGES} stages")
    specs = [_stage_spec(ctx, s, i) for i, s in enumerate(stages)]
    # The domain refuses overlapping (repeated) stage names and bad rules.
    gates.Pipeline(service, tuple(_domain_stage(Stage(**s)) for s in specs))
    return specs


def _blocked_now(ctx: Ctx, pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """Each stage's blocker codes for the newest version now: what a lowered requirement
    would lift."""
    newest = ctx.session.execute(
        select(Version.digest)
        .where(Version.service_key == pipeline.service_key)
        .order_by(Version.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if newest is None:
        return {}
    return {
        stage.name: frozenset(
            b.code
            for b in _decide(ctx, pipeline.service_key, stage.name, newest, ctx.now, False)[
                0
            ].blockers
        )
        for stage in stages_of(ctx, pipeline)
    }


def _replace_stages(
    ctx: Ctx, owner: access.Owner, pipeline: Pipeline | None, specs: list[dict[str, Any]]
) -> Pipeline:
    before = pipeline_snapshot(ctx, pipeline) if pipeline else None
    if pipeline is None:
        pipeline = Pipeline(
            service_key=owner.service,
            created_by=ctx.principal.actor,
            created_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.session.add(pipeline)
    else:
        for old in stages_of(ctx, pipeline):
            ctx.session.delete(old)
        pipeline.updated_at = ctx.now
    ctx.session.flush()
    for position, spec in enumerate(specs):
        ctx.session.add(Stage(pipeline_id=pipeline.id, position=position, **spec))
    ctx.session.flush()
    access.record(
        ctx,
        "pipeline_set",
        owner.service,
        object_type="deploys_pipeline",
        before=before,
        after=pipeline_snapshot(ctx, pipeline),
        details={"stages": [s["name"] for s in specs]},
    )
    return pipeline


def apply_change(ctx: Ctx, change: ProtectedChange) -> str | None:
    """Apply an approved protected change of a pipeline, or say why it no longer can be."""
    pipeline = _find(ctx, change.subject)
    if pipeline is None:
        return f"{change.subject} no longer has a pipeline"
    current = [stage_snapshot(s) for s in stages_of(ctx, pipeline)]
    if problem := changes.unchanged(change, {"stages": current}):
        return problem
    specs = _stage_specs(ctx, change.subject, change.proposal["stages"])
    _replace_stages(ctx, access.owner(ctx, change.subject), pipeline, specs)
    return None


def _find(ctx: Ctx, service: str) -> Pipeline | None:
    return ctx.session.execute(
        select(Pipeline).where(Pipeline.service_key == service)
    ).scalar_one_or_none()


def get_pipeline(ctx: Ctx, service: str) -> Pipeline:
    require_site_role(ctx, Role.VIEWER)
    return _pipeline(ctx, service)


def _pipeline(ctx: Ctx, service: str) -> Pipeline:
    found = _find(ctx, service)
    if found is None:
        raise NotFound(f"{service!r} has no pipeline", details={"field": "service"})
    access.owner(ctx, service)  # another organisation's service is not found
    return found


def list_pipelines(ctx: Ctx) -> list[Pipeline]:
    require_site_role(ctx, Role.VIEWER)
    query = select(Pipeline).where(Pipeline.service_key.in_(access.visible_services(ctx)))
    return list(ctx.session.execute(query.order_by(Pipeline.service_key)).scalars())


def _stage_row(ctx: Ctx, pipeline: Pipeline, stage: str) -> Stage:
    for row in stages_of(ctx, pipeline):
        if row.name == stage:
            return row
    raise NotFound(
        f"{pipeline.service_key} has no stage {stage!r}", details={"field": "stage", "value": stage}
    )


# --- versions -------------------------------------------------------------------------


def version_snapshot(row: Version) -> dict[str, Any]:
    return {
        "service": row.service_key,
        "artifact": row.artifact,
        "digest": row.digest,
        "author": row.author,
        "registered_by": row.registered_by,
        "created_at": row.created_at.isoformat(),
    }


def _author(ctx: Ctx, author: Any) -> User:
    """The account a registration names as the author, or a refusal naming the author."""
    name = _name(author, "author")
    try:
        return accounts.named_person(ctx.session, name)
    except InvalidInput as refused:
        raise InvalidInput(
            f"author: {refused.message}",
            code="unknown_author",
            details={"field": "author", "value": name},
        ) from None


def register_version(
    ctx: Ctx, service: str, artifact: str, digest: str, author: str | None = None
) -> Version:
    """A build of the service, by ``author``: an account (username or email), or unknown.
    An artifact registered again with another digest invalidates every open break-glass
    request for its old digest."""
    require_site_role(ctx, Role.ENGINEER)
    access.require_engineer(ctx, service)
    artifact, digest = _name(artifact, "artifact"), _name(digest, "digest")
    author_id = None if author is None else _author(ctx, author).id
    if _version(ctx, service, digest) is not None:
        raise Conflict(f"{digest} is registered already", details={"field": "digest"})
    row = Version(
        service_key=service,
        artifact=artifact,
        digest=digest,
        author_id=author_id,
        registered_by=ctx.principal.actor,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    ctx.session.refresh(row, ["author"])
    author = row.author
    access.record(
        ctx,
        "version_registered",
        service,
        digest=digest,
        object_type="deploys_version",
        object_id=f"{service}@{digest}",
        after=version_snapshot(row),
        details={"artifact": artifact, "author": author},
    )
    from mechanisms.deploys import breakglass  # the two services call each other

    replaced = ctx.session.execute(
        select(Version.digest).where(
            Version.service_key == service, Version.artifact == artifact, Version.digest != digest
        )
    ).scalars()
    for old in replaced:
        breakglass.digest_changed(ctx, service, old, digest)
    return row


def name_author(ctx: Ctx, service: str, version: str, author: str) -> Version:
    """Name the author of a version registered without one (an engineer of the owning
    team); until then it cannot be broken-glass. A known author is never replaced: whoever
    could swap it could approve their own change."""
    require_site_role(ctx, Role.ENGINEER)
    access.require_engineer(ctx, service)
    row = _named_version(ctx, service, version)
    if row.author_id is not None:
        raise Conflict(
            f"{row.digest} is by {row.author} already; a known author is not replaced",
            code="author_known",
            details={"field": "author", "author": row.author},
        )
    before = version_snapshot(row)
    row.author_id = _author(ctx, author).id
    ctx.session.flush()
    ctx.session.refresh(row, ["author"])
    access.record(
        ctx,
        "version_author_named",
        service,
        digest=row.digest,
        object_type="deploys_version",
        object_id=f"{service}@{row.digest}",
        before=before,
        after=version_snapshot(row),
        details={"author": row.author},
    )
    return row


def _version(ctx: Ctx, service: str, digest: str) -> Version | None:
    return ctx.session.execute(
        select(Version).where(Version.service_key == service, Version.digest == digest)
    ).scalar_one_or_none()


def get_version(ctx: Ctx, service: str, version: str) -> Version:
    """A version by digest, or the newest one of an artifact id."""
    require_site_role(ctx, Role.VIEWER)
    access.owner(ctx, service)
    return _named_version(ctx, service, version)


def _named_version(ctx: Ctx, service: str, version: str) -> Version:
    return _version(ctx, service, version) or _newest_of_artifact(ctx, service, version)


def _newest_of_artifact(ctx: Ctx, service: str, artifact: str) -> Version:
    found = ctx.session.execute(
        select(Version)
        .where(Version.service_key == service, Version.artifact == artifact)
        .order_by(Version.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(
            f"{service} has no version {artifact!r}; register it first (mech deploy versions register)",
            details={"field": "version", "value": artifact},
        )
    return found


def list_versions(ctx: Ctx, service: str, limit: int = 100) -> list[Version]:
    require_site_role(ctx, Role.VIEWER)
    access.owner(ctx, service)
    return list(
        ctx.session.execute(
            select(Version)
            .where(Version.service_key == service)
            .order_by(Version.id.desc())
            .limit(max(1, min(limit, 500)))
        ).scalars()
    )


# --- test results ---------------------------------------------------------------------


def test_run_snapshot(row: TestRun) -> dict[str, Any]:
    return {
        "service": row.service_key,
        "digest": row.digest,
        "suite": row.suite,
        "tests": row.tests,
        "failures": row.failures,
        "errors": row.errors,
        "skipped": row.skipped,
        "time_seconds": row.time_seconds,
        "passed": row.tests - row.skipped > 0 and not row.failures and not row.errors,
        "problems": row.problems,
        "uploaded_by": row.uploaded_by,
        "uploaded_at": row.uploaded_at.isoformat(),
    }


def upload_tests(ctx: Ctx, service: str, version: str, suite: str, xml: bytes | str) -> TestRun:
    """A JUnit XML report of ``suite`` against one version, parsed (defusedxml, junitparser)
    and stored with its counts and failures. Malformed XML is refused, nothing stored."""
    require_site_role(ctx, Role.ENGINEER)
    access.require_engineer(ctx, service)
    suite = _name(suite, "suite")
    found = get_version(ctx, service, version)
    report = junit.parse(xml)
    row = TestRun(
        service_key=service,
        digest=found.digest,
        suite=suite,
        tests=report.tests,
        failures=report.failures,
        errors=report.errors,
        skipped=report.skipped,
        time_seconds=report.time,
        problems=[p.__dict__ for p in report.problems],
        uploaded_by=ctx.principal.actor,
        uploaded_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    access.record(
        ctx,
        "tests_uploaded",
        service,
        digest=found.digest,
        object_type="deploys_test_run",
        object_id=row.id,
        after=test_run_snapshot(row),
        details={"suite": suite, "passed": report.passed, "tests": report.tests},
    )
    return row


def test_runs(ctx: Ctx, service: str, digest: str) -> list[TestRun]:
    require_site_role(ctx, Role.VIEWER)
    access.owner(ctx, service)
    return list(ctx.session.execute(_test_runs_of(service, digest)).scalars())


# --- manual stage approvals -----------------------------------------------------------


def stage_approval_snapshot(row: StageApproval) -> dict[str, Any]:
    return {
        "id": row.id,
        "service": row.service_key,
        "stage": row.stage,
        "digest": row.digest,
        "approver": row.approver,
        "roles": list(row.roles),
        "approved_at": row.approved_at.isoformat(),
    }


def _refuse_second_approval(ctx: Ctx, service: str, stage: str, digest: str, approver: str) -> None:
    """A person counts once towards a stage's approvals: a second approval would add
    nothing, so it is refused rather than accepted as if it counted."""
    earlier = ctx.session.execute(
        select(StageApproval.id).where(
            StageApproval.service_key == service,
            StageApproval.stage == stage,
            StageApproval.digest == digest,
            StageApproval.approver == approver,
        )
    ).first()
    if earlier:
        raise Conflict(
            f"{approver} has already approved {digest} into {service}/{stage}; a person "
            "counts once, so another approval would not count",
            code="already_approved",
        )


def approve_stage(
    ctx: Ctx, service: str, stage: str, version: str, comment: str = ""
) -> StageApproval:
    """A person's approval of one version into a stage that asks for one."""
    require_site_role(ctx, Role.ENGINEER)
    owner = access.owner(ctx, service)
    row = _stage_row(ctx, get_pipeline(ctx, service), stage)
    if not row.approval_roles:
        raise Conflict(f"{service}/{stage} asks for no manual approval", details={"field": "stage"})
    held = access.roles_held(ctx, owner.team_id)
    if not held & set(row.approval_roles):
        raise Forbidden(
            f"approving {service}/{stage} needs {' or '.join(row.approval_roles)} in {owner.team}",
            details={"needed_role": row.approval_roles[0]},
        )
    who = access.actor(ctx)
    if not who.human:
        raise Forbidden("bots and machine tokens cannot approve a stage", code="not_human")
    if not isinstance(comment, str) or "\x00" in comment or len(comment) > 2000:
        raise _invalid("comment", "text up to 2000 characters")
    registered = get_version(ctx, service, version)
    if registered.author_id is not None and registered.author_id == ctx.principal.user_id:
        # The person who wrote the change is the one an approval exists to check.
        raise Forbidden(
            f"{ctx.principal.username} wrote {registered.digest} and cannot approve it",
            code="author_approval",
        )
    digest = registered.digest
    _refuse_second_approval(ctx, service, stage, digest, who.id)
    approval = StageApproval(
        service_key=service,
        stage=stage,
        digest=digest,
        approver=who.id,
        human=who.human,
        roles=sorted(held),
        comment=comment,
        approved_at=ctx.now,
    )
    ctx.session.add(approval)
    ctx.session.flush()
    access.record(
        ctx,
        "stage_approved",
        service,
        stage=stage,
        digest=digest,
        object_type="deploys_stage_approval",
        object_id=approval.id,
        details={"approver": who.id, "roles": sorted(held), "comment": comment},
    )
    return approval


# --- the gate -------------------------------------------------------------------------


def _current(ctx: Ctx, pipeline: Pipeline, stage: str) -> Deployment | None:
    return ctx.session.execute(
        select(Deployment)
        .where(Deployment.pipeline_id == pipeline.id, Deployment.stage == stage)
        .order_by(Deployment.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _last_good(ctx: Ctx, pipeline: Pipeline, stage: str, other_than: str) -> str | None:
    return ctx.session.execute(
        select(Deployment.digest)
        .where(
            Deployment.pipeline_id == pipeline.id,
            Deployment.stage == stage,
            Deployment.state == SUCCEEDED,
            Deployment.digest != other_than,
        )
        .order_by(Deployment.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _domain_deployment(row: Deployment) -> gates.Deployment:
    return gates.Deployment(row.stage, row.digest, row.started_at, row.previous_good)


def _deployments_query() -> Select[tuple[Deployment]]:
    of_pipeline = Deployment.pipeline_id == bindparam("pipeline_id")
    newest = select(func.max(Deployment.id)).where(of_pipeline).group_by(Deployment.stage)
    newest_of_digest = (
        select(func.max(Deployment.id))
        .where(of_pipeline, Deployment.digest == bindparam("digest"))
        .group_by(Deployment.stage)
    )
    return (
        select(Deployment)
        .where(Deployment.id.in_(newest.union(newest_of_digest)))
        .order_by(Deployment.id)
    )


# Built once, as the gate's other statements below: building a statement of a few
# subqueries costs more CPU than the database takes to answer it.
_DEPLOYMENTS = _deployments_query()


def _deployments(
    ctx: Ctx, pipeline: Pipeline, stages: list[Stage], digest: str
) -> dict[str, gates.Deployment]:
    """Each stage's current deployment, or the bake of this digest it rolled back from."""
    rows = ctx.session.execute(
        _DEPLOYMENTS, {"pipeline_id": pipeline.id, "digest": digest}
    ).scalars()
    current: dict[str, Deployment] = {}
    rolled: dict[str, Deployment] = {}
    for row in rows:  # by id, so the newest of each stage (and of the digest) lands last
        current[row.stage] = row
        if row.digest == digest:
            rolled[row.stage] = row
    found = {}
    for stage in stages:
        if stage.name in current:
            found[stage.name] = _domain_deployment(current[stage.name])
        # A stage rolled back from this digest: show the gate the bake that failed.
        failed = rolled.get(stage.name)
        if failed is not None and failed.state == ROLLED_BACK:
            found[stage.name] = _domain_deployment(failed)
    return found


def _alarm_transitions(ctx: Ctx, stage: Stage) -> list[gates.AlarmTransition]:
    found = []
    for name in stage.alarms:
        try:
            history = ops_alarms.history(ctx, name, limit=200)
        except NotFound:
            continue  # an alarm deleted in ops no longer watches the stage
        found += [gates.AlarmTransition(name, t.to_state, t.at) for t in history]
    return found


def _domain_approval(row: StageApproval) -> gates.StageApproval:
    return gates.StageApproval(
        gates.Principal(row.approver, row.human),
        frozenset(row.roles),
        Target(row.service_key, row.stage, row.digest),
        row.approved_at,
    )


def _test_runs_of(service: Any, digest: Any) -> Select[tuple[TestRun]]:
    return (
        select(TestRun)
        .where(TestRun.service_key == service, TestRun.digest == digest)
        .order_by(TestRun.id)
    )


def _suite_result(row: TestRun) -> gates.SuiteResult:
    return gates.SuiteResult(
        row.suite, row.digest, row.tests, row.failures, row.errors, row.skipped
    )


RECORD_KINDS = ("test_runs", "approvals", "requests")


@dataclass(frozen=True)
class _GateReads:
    """The statements of a gate call, built once on first use (breakglass imports this
    module): building a statement of subqueries costs more CPU than the database takes to
    answer it."""

    # The pipeline's stages in order, each row with the pipeline, the version if the asked
    # version is its digest, the owning team and organisation, and whether the digest has
    # test runs, approvals and open break-glass requests (parameters service, version,
    # stage, digest, drill): the first round trip of every gate call.
    rows: Select[tuple[Any, ...]]
    # Whether test runs, approvals, break-glass requests exist, for a digest found by its
    # artifact id (the rows above asked about the digest given).
    any_records: Select[tuple[bool, bool, bool]]
    # The records themselves, each read only when it exists: often none does, and an empty
    # select costs a round trip like any other.
    records: tuple[Select[tuple[Any]], ...]


@functools.cache
def _gate_reads() -> _GateReads:
    from mechanisms.deploys import breakglass

    approvals = select(StageApproval).where(
        StageApproval.service_key == bindparam("service"),
        StageApproval.stage == bindparam("stage"),
        StageApproval.digest == bindparam("digest"),
    )
    records = (
        _test_runs_of(bindparam("service"), bindparam("digest")),
        approvals,
        breakglass.OPEN_REQUESTS,
    )
    probes = [q.exists() for q in records]
    owning_team = (
        select(OpsService.owner_team_id)
        .where(OpsService.key == bindparam("service"))
        .scalar_subquery()
    )
    chain = team_chain_cte(owning_team)
    team = select(chain.c.id, chain.c.slug).where(chain.c.depth == 0).limit(1)
    # The organisation is the top of the chain; a tree that loops (which nothing here
    # builds) has none, and the caller falls back to the team chain query.
    org = select(chain.c.id, chain.c.slug).where(chain.c.parent_id.is_(None)).limit(1)
    rows = (
        select(
            Pipeline,
            Stage,
            Version,
            team.with_only_columns(chain.c.id).scalar_subquery().label("team_id"),
            team.with_only_columns(chain.c.slug).scalar_subquery().label("team"),
            org.with_only_columns(chain.c.id).scalar_subquery().label("org_id"),
            org.with_only_columns(chain.c.slug).scalar_subquery().label("org"),
            *(p.label(f"has_{n}") for p, n in zip(probes, RECORD_KINDS, strict=True)),
        )
        .join(Stage, Stage.pipeline_id == Pipeline.id)
        .outerjoin(
            Version,
            (Version.service_key == Pipeline.service_key)
            & (Version.digest == bindparam("version")),
        )
        .where(Pipeline.service_key == bindparam("service"))
        .order_by(Stage.position)
    )
    return _GateReads(rows, select(*probes), records)


@dataclass(frozen=True)
class _GateRows:
    pipeline: Pipeline
    stages: list[Stage]
    domain: gates.Pipeline
    index: int  # of the stage asked
    version: Version
    owner: access.Owner
    records: list[list[Any]]  # test runs, approvals, open break-glass requests


def _gate_rows(ctx: Ctx, service: str, stage: str, version: str, drill: bool) -> _GateRows:
    """What a decision reads from the database: three statements when nothing but the
    pipeline exists (these rows, the windows, the deployments), one more per kind of
    record the version has, one more (and a probe) when ``version`` is an artifact id."""
    reads = _gate_reads()
    params = {
        "service": service,
        "version": version,
        "stage": stage,
        "digest": version,
        "drill": drill,
    }
    rows = ctx.session.execute(reads.rows, params).all()
    if not rows:
        _pipeline(ctx, service)  # raises NotFound: no pipeline
    first, stages = rows[0], [row.Stage for row in rows]
    domain = gates.Pipeline(service, tuple(_domain_stage(s) for s in stages))
    index = domain.index(stage)  # an unknown stage is named before the version is looked up
    found = first.Version
    if found is None:
        found = _newest_of_artifact(ctx, service, version)
        params["digest"] = found.digest
        present = ctx.session.execute(reads.any_records, params).one()
    else:
        present = tuple(getattr(first, f"has_{kind}") for kind in RECORD_KINDS)
    if first.org is None:
        owner = access.owner(ctx, service)  # no ops service (NotFound), or a looping tree
    else:
        owner = access.Owner(service, first.team_id, first.team, first.org_id, first.org)
    records = [
        list(ctx.session.execute(q, params).scalars()) if has else []
        for q, has in zip(reads.records, present, strict=True)
    ]
    return _GateRows(first.Pipeline, stages, domain, index, found, owner, records)


def _decide(
    ctx: Ctx, service: str, stage: str, version: str, at: datetime, drill: bool
) -> tuple[gates.Decision, Pipeline, Version]:
    from mechanisms.deploys import breakglass

    if at.tzinfo is None:
        raise _invalid("at", "the instant must carry a time zone", "naive_instant")
    # The callers authorised the principal already; the reads below check nothing again.
    read = _gate_rows(ctx, service, stage, version, drill)
    pipeline, rows, found, index = read.pipeline, read.stages, read.version, read.index
    test_runs, approval_rows, requests = read.records
    scope = read.owner.scope(stage)
    previous = rows[index - 1] if index else None
    snapshot = gates.Snapshot(
        pipeline=read.domain,
        window=windows.calendar_for(ctx, scope).gate_state(scope, at),
        deployments=_deployments(ctx, pipeline, rows, found.digest),
        test_results=[_suite_result(r) for r in test_runs],
        alarms={previous.name: _alarm_transitions(ctx, previous)} if previous else {},
        approvals=[_domain_approval(r) for r in approval_rows],
        grant=breakglass.grant_among(ctx, requests, at, service),
    )
    ask = gates.Promotion(
        stage,
        gates.Version(found.artifact, found.digest, found.author),
        access.actor(ctx),
        at,
        drill,
    )
    return gates.evaluate(snapshot, ask), pipeline, found


def gate(
    ctx: Ctx,
    service: str,
    stage: str,
    version: str,
    at: datetime | None = None,
    *,
    drill: bool = False,
) -> gates.Decision:
    """May ``version`` (a digest or artifact id) go into ``service``'s ``stage`` at ``at``
    (default now)? Every blocker, how to clear it, and the window's next transition."""
    require_site_role(ctx, Role.VIEWER)
    return _decide(ctx, service, stage, version, at or ctx.now, drill)[0]


# --- promotions, bakes and rollbacks --------------------------------------------------


def deployment_snapshot(row: Deployment) -> dict[str, Any]:
    return {
        "id": row.id,
        "stage": row.stage,
        "digest": row.digest,
        "state": row.state,
        "previous_good": row.previous_good,
        "started_at": row.started_at.isoformat(),
        "bake_until": row.bake_until.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "promoted_by": row.promoted_by,
        "break_glass": row.break_glass_id,
        "rollback_alarm": row.rollback_alarm,
    }


def promote(
    ctx: Ctx, service: str, stage: str, version: str, *, drill: bool = False
) -> tuple[gates.Decision, Deployment | None]:
    """Re-check every gate now; when it passes, record the deployment (it bakes) and spend
    the break-glass grant that lifted a block window. A drill runs the whole path, grant
    included, and deploys nothing. A blocked promotion is recorded and changes nothing else."""
    require_site_role(ctx, Role.ENGINEER)
    access.require_engineer(ctx, service)
    from mechanisms.deploys import breakglass

    decision, pipeline, found = _decide(ctx, service, stage, version, ctx.now, drill)
    digest = found.digest
    if not decision.allowed:
        access.record(
            ctx,
            "promotion_blocked",
            service,
            stage=stage,
            digest=digest,
            details={"drill": drill, "blockers": [b.code for b in decision.blockers]},
        )
        return decision, None
    request_id = None
    # A drill spends its drill grant even when no window blocks: the drill is the path.
    if decision.break_glass or (drill and breakglass.has_grant(ctx, decision.target, drill=True)):
        request_id = breakglass.use(ctx, decision.target, drill=drill)
    if drill:
        access.record(
            ctx,
            "drill_promoted",
            service,
            stage=stage,
            digest=digest,
            details={"break_glass": request_id},
        )
        return decision, None
    row = _start_deployment(ctx, pipeline, _stage_row(ctx, pipeline, stage), digest, request_id)
    breakglass.candidate_changed(ctx, service, pipeline_stage_after(ctx, pipeline, stage), digest)
    return decision, row


class PromotionBlocked(RecordedRefusal):
    code = "promotion_blocked"


def promote_or_refuse(
    ctx: Ctx, service: str, stage: str, version: str, *, drill: bool = False
) -> tuple[gates.Decision, Deployment | None]:
    """``promote`` for the API and the pages: a blocked promotion is refused (409) with the
    gate's answer as details, and stays recorded as blocked."""
    decision, row = promote(ctx, service, stage, version, drill=drill)
    if not decision.allowed:
        raise PromotionBlocked(
            f"{service}/{stage} {decision.target.digest} is blocked: "
            + "; ".join(b.message for b in decision.blockers),
            details=decision.to_dict(),
        )
    return decision, row


def stages_watching(session: Session, alarm: str) -> list[str]:
    """Pipeline stages that list the alarm, and the deploys baking under it (ops asks before
    deleting or renaming an alarm)."""
    stages = session.execute(
        select(Pipeline.id, Pipeline.service_key, Stage.name, Stage.alarms).join(
            Stage, Stage.pipeline_id == Pipeline.id
        )
    ).all()
    watching = [(p, service, stage) for p, service, stage, alarms in stages if alarm in alarms]
    baking = set(
        session.execute(
            select(Deployment.pipeline_id, Deployment.stage).where(Deployment.state == BAKING)
        ).all()
    )
    return [
        f"{'deploy baking in ' if (p, stage) in baking else 'pipeline stage '}{service}/{stage}"
        for p, service, stage in watching
    ]


def pipeline_stage_after(ctx: Ctx, pipeline: Pipeline, stage: str) -> str | None:
    names = [s.name for s in stages_of(ctx, pipeline)]
    i = names.index(stage)
    return names[i + 1] if i + 1 < len(names) else None


def _start_deployment(
    ctx: Ctx, pipeline: Pipeline, stage: Stage, digest: str, request_id: int | None
) -> Deployment:
    bake = timedelta(seconds=stage.bake_seconds)
    row = Deployment(
        pipeline_id=pipeline.id,
        stage=stage.name,
        digest=digest,
        state=BAKING if bake else SUCCEEDED,
        previous_good=_last_good(ctx, pipeline, stage.name, digest),
        started_at=ctx.now,
        bake_until=ctx.now + bake,
        finished_at=None if bake else ctx.now,
        promoted_by=ctx.principal.actor,
        break_glass_id=request_id,
    )
    ctx.session.add(row)
    ctx.session.flush()
    access.record(
        ctx,
        "promoted",
        pipeline.service_key,
        stage=stage.name,
        digest=digest,
        object_type="deploys_deployment",
        object_id=row.id,
        after=deployment_snapshot(row),
        details={
            "bake_until": row.bake_until.isoformat(),
            "previous_good": row.previous_good,
            "break_glass": request_id,
        },
    )
    return row


def due_bakes(session: Any, now: datetime, limit: int) -> list[int]:
    """Deployments still baking: each is checked every tick (alarms) until its bake ends."""
    return list(
        session.execute(
            select(Deployment.id)
            .where(Deployment.state == BAKING)
            .order_by(Deployment.id)
            .limit(limit)
        ).scalars()
    )


def advance_bake(ctx: Ctx, deployment_id: int) -> None:
    """Roll the stage back when a watched alarm is in ALARM (or went there during the bake);
    mark the deployment succeeded once its bake is over with the alarms quiet."""
    row = ctx.session.get(Deployment, deployment_id, with_for_update=True)
    if row is None or row.state != BAKING:
        return
    pipeline = ctx.session.get(Pipeline, row.pipeline_id)
    assert pipeline is not None
    stage = _stage_row(ctx, pipeline, row.stage)
    until = min(ctx.now, row.bake_until)
    fired = [
        t
        for t in _alarm_transitions(ctx, stage)
        if t.state == gates.ALARM and row.started_at <= t.at <= until
    ]
    firing = ops_alarms.firing(ctx.session, list(stage.alarms))
    if firing or fired:
        alarm = firing[0] if firing else min(fired, key=lambda t: t.at).alarm
        _roll_back(ctx, pipeline, row, alarm)
    elif ctx.now >= row.bake_until:
        row.state = SUCCEEDED
        row.finished_at = ctx.now
        ctx.session.flush()
        access.record(
            ctx,
            "baked",
            pipeline.service_key,
            stage=row.stage,
            digest=row.digest,
            object_type="deploys_deployment",
            object_id=row.id,
        )


def alarm_fired(ctx: Ctx, alarm: str) -> int:
    """Check every deployment baking in a stage that watches ``alarm`` (idempotent)."""
    rows = ctx.session.execute(
        select(Deployment.id, Stage.alarms)
        .join(
            Stage, (Stage.pipeline_id == Deployment.pipeline_id) & (Stage.name == Deployment.stage)
        )
        .where(Deployment.state == BAKING)
    ).all()
    watching = [r.id for r in rows if alarm in r.alarms]
    for deployment_id in watching:
        advance_bake(ctx, deployment_id)
    return len(watching)


def _roll_back(ctx: Ctx, pipeline: Pipeline, row: Deployment, alarm: str) -> None:
    row.state = ROLLED_BACK
    row.finished_at = ctx.now
    row.rollback_alarm = alarm
    ctx.session.flush()
    target = row.previous_good
    if target is not None:
        ctx.session.add(
            Deployment(
                pipeline_id=pipeline.id,
                stage=row.stage,
                digest=target,
                state=SUCCEEDED,
                previous_good=_last_good(ctx, pipeline, row.stage, target),
                started_at=ctx.now,
                bake_until=ctx.now,
                finished_at=ctx.now,
                promoted_by=ctx.principal.actor,
            )
        )
        ctx.session.flush()
    access.record(
        ctx,
        "rolled_back",
        pipeline.service_key,
        stage=row.stage,
        digest=row.digest,
        object_type="deploys_deployment",
        object_id=row.id,
        details={"alarm": alarm, "to": target},
    )


def stage_states(ctx: Ctx, service: str) -> list[dict[str, Any]]:
    """Each stage with the deployment it runs now (what a pipeline view shows)."""
    pipeline = get_pipeline(ctx, service)
    found = []
    for stage in stages_of(ctx, pipeline):
        current = _current(ctx, pipeline, stage.name)
        found.append(
            {
                **stage_snapshot(stage),
                "deployment": deployment_snapshot(current) if current else None,
            }
        )
    return found


def timeline(ctx: Ctx, service: str, limit: int = 200) -> list[TimelineEntry]:
    require_site_role(ctx, Role.VIEWER)
    access.owner(ctx, service)
    return list(
        ctx.session.execute(
            select(TimelineEntry)
            .where(TimelineEntry.service_key == service)
            .order_by(TimelineEntry.id.desc())
            .limit(max(1, min(limit, 1000)))
        ).scalars()
    )


def timeline_snapshot(row: TimelineEntry) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "stage": row.stage,
        "digest": row.digest,
        "actor": row.actor,
        "at": row.at.isoformat(),
        "details": row.details,
    }
