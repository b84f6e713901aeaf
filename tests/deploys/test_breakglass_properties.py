"""The break-glass invariants through the services and storage, on both backends.

A hypothesis state machine drives random sequences of what happens around a frozen
pipeline: break-glass requests, approvals (mostly of the exact promotion, sometimes of
another version, stage or service), denials, revocations, people gaining and losing the
leader role, the clock moving across the request's 1 h and the grant's 4 h, new versions
and rebuilt digests, promotions and gate calls, block windows opening and closing, and the
worker's expiry jobs. After every step the database is read and checked against a model
kept here, independently of ``approvals.py``: who is a leader, who wrote which version,
which windows are open, which requests a version change or a denial ended, and when each
request first met the two-person rule.

Each invariant names in its docstring the mutation of the code it was seen to catch (the
code was broken by hand, the test failed, the code was restored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from mechanisms.core import accounts
from mechanisms.core.clock import ManualClock
from mechanisms.core.context import Ctx
from mechanisms.core.db import Database
from mechanisms.core.errors import MechanismsError
from mechanisms.core.identity import Principal, system_principal
from mechanisms.core.worker import Worker
from mechanisms.deploys import access, approvals, breakglass, pipelines, windows
from mechanisms.deploys.tables import BreakGlassDecision, BreakGlassRequest, Deployment
from mechanisms.ops import alarms, tickets
from tests.conftest import seed_org, wipe

from .conftest import PASSING

SERVICE = "checkout"
STAGES = [{"name": "beta", "required_suites": ["integration"]}, {"name": "prod"}]
# Who may approve: leo leads acme, ada administers it (admins count as leaders); the others
# are payments engineers; robot is a bot. Role changes move the first five.
PEOPLE = ["leo", "ada", "lea", "max", "sam", "eve", "robot"]
MOVABLE = ["leo", "lea", "max", "sam", "eve"]
REQUESTERS = ["eve", "lea", "max", "sam"]
AUTHORS = ["sam", "max", None]
SCOPES = [("org", "acme"), ("stage", f"{SERVICE}/prod")]
REQUEST_TTL = approvals.DEFAULT_REQUEST_TTL
GRANT_TTL = approvals.DEFAULT_GRANT_TTL


@dataclass
class Model:
    """What the test knows without asking the code under test."""

    leaders: set[str] = field(default_factory=lambda: {"leo", "ada"})
    authors: dict[str, str | None] = field(default_factory=dict)  # digest -> author
    artifacts: dict[str, str] = field(default_factory=dict)  # digest -> artifact
    windows: dict[str, tuple[datetime, datetime, str]] = field(default_factory=dict)
    requesters: dict[int, str] = field(default_factory=dict)
    # Requests a denial, a use or a version change ended, whatever their stored status says.
    ended: set[int] = field(default_factory=set)
    # The instant each request first met the rule (its grant's clock starts there).
    first_met: dict[int, datetime] = field(default_factory=dict)
    # Deployment id -> True when the model saw it pass legitimately.
    promotions: dict[int, bool] = field(default_factory=dict)

    def blocked(self, stage: str, at: datetime) -> bool:
        return any(
            start <= at < end and (kind == "org" or stage == "prod")
            for start, end, kind in self.windows.values()
        )


def eligible_approvers(model: Model, row: BreakGlassRequest, rows: list[BreakGlassDecision]):
    """Live approvals that may count for ``row``: the model's reading of the rule."""
    return {
        d.actor
        for d in rows
        if d.kind == "approve"
        and d.revoked_at is None
        and d.actor != "robot"
        and d.actor != model.requesters[row.id]
        and d.actor != model.authors[row.digest]
        and (d.service_key, d.stage, d.digest) == (row.service_key, row.stage, row.digest)
        and d.at < row.requested_at + REQUEST_TTL
    }


def model_holds(model: Model, row: BreakGlassRequest, rows, now: datetime) -> bool:
    """Whether the model says ``row`` holds a usable grant at ``now``."""
    if row.id in model.ended or row.drill:
        return False
    found = eligible_approvers(model, row, rows)
    if len(found) < 2 or not found & model.leaders:
        return False
    return now < model.first_met.get(row.id, now) + GRANT_TTL


def model_open(model: Model, row: BreakGlassRequest, rows, now: datetime) -> bool:
    """Pending or granted as the model reads it: a version change ends only such requests
    (one that expired unapproved, or whose grant expired, stays as it was)."""
    if row.id in model.ended:
        return False
    found = eligible_approvers(model, row, rows)
    if len(found) >= 2 and found & model.leaders:
        return now < model.first_met.get(row.id, now) + GRANT_TTL
    return now < row.requested_at + REQUEST_TTL


def principal_of(session, username: str) -> Principal:
    user = accounts.find_user(session, username)
    return Principal(
        user_id=user.id,
        username=user.username,
        via="session" if not user.is_bot else "token",
        is_site_admin=user.is_site_admin,
        is_bot=user.is_bot,
    )


class BreakGlassMachine(RuleBasedStateMachine):
    db: Database  # set by the test for its backend

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.model = Model()
        self.versions = 0
        self.worker: Worker | None = None
        wipe(self.db)
        seed_org(self.db, self.clock)
        self.call(self._setup)
        self.call(self._first_request, as_="eve")

    # --- plumbing -------------------------------------------------------------------

    def call(self, fn, *args, as_: str | None = None, **kwargs):
        with self.db.transaction() as session:
            who = principal_of(session, as_) if as_ else system_principal("test")
            return fn(Ctx(session, who, self.clock.now()), *args, **kwargs)

    def attempt(self, fn, *args, as_: str | None = None, **kwargs):
        """A step the services may refuse: a refusal changes nothing (checked by the
        invariants, which read the database after it)."""
        try:
            return self.call(fn, *args, as_=as_, **kwargs)
        except MechanismsError:
            return None

    def _setup(self, ctx: Ctx) -> None:
        for name in ("lea", "max", "sam"):
            accounts.create_user(ctx, name)
            accounts.set_membership(ctx, "payments", name, "engineer")
        alarms.create_service(ctx, SERVICE, "Checkout", "payments")
        pipelines.set_pipeline(ctx, SERVICE, STAGES)
        self.ticket = tickets.create(ctx, SERVICE, "EU cards fail", 1).id
        # Where the interesting histories start: v0 runs in beta, prod is frozen.
        digest = self._register(ctx, "v0", "sam")
        deployment = pipelines.promote(ctx, SERVICE, "beta", digest)[1]
        self.model.promotions[deployment.id] = True
        self.beta = digest
        self._freeze(ctx, "stage", f"{SERVICE}/prod", 6)

    def _first_request(self, ctx: Ctx) -> None:
        row = breakglass.request(ctx, SERVICE, "prod", self.beta, "EU card fix", str(self.ticket))
        self.model.requesters[row.id] = "eve"

    def _freeze(self, ctx: Ctx, kind: str, target: str, hours: int) -> None:
        until = ctx.now + timedelta(hours=hours)
        row = windows.freeze(ctx, kind, target, until, "freeze")
        self.model.windows[row.uid] = (ctx.now, until, kind)

    def _register(self, ctx: Ctx, artifact: str, author: str | None) -> str:
        self.versions += 1
        digest = f"sha256:{self.versions:04x}"
        # The artifact's digest changes under its open requests: they end.
        ending = self._open_requests(lambda row: self.model.artifacts.get(row.digest) == artifact)
        pipelines.register_version(ctx, SERVICE, artifact, digest, author)
        pipelines.upload_tests(ctx, SERVICE, digest, "integration", PASSING)
        self.model.ended |= ending
        self.model.authors[digest] = author
        self.model.artifacts[digest] = artifact
        return digest

    def _open_requests(self, which) -> set[int]:
        """Ids of the requests the model holds open, among those ``which`` picks (read
        from a transaction of its own, before the step changes anything)."""
        if not self.model.requesters:
            return set()
        requests, by_request, *_ = self.read()
        now = self.clock.now()
        return {
            r.id
            for r in requests
            if which(r) and model_open(self.model, r, by_request.get(r.id, []), now)
        }

    def digest(self, index: int) -> str:
        digests = list(self.model.authors)
        return digests[index % len(digests)]

    def pick(self, stage: str, index: int) -> str:
        """Mostly the version the stage would receive next (what runs in beta for prod,
        the newest build for beta), sometimes any version."""
        if index >= 4:
            return self.digest(index)
        return self.beta if stage == "prod" else list(self.model.authors)[-1]

    def request_id(self, index: int) -> int:
        """Mostly the newest request, sometimes an older one."""
        ids = sorted(self.model.requesters)
        return ids[-1] if index >= 4 else ids[index % len(ids)]

    def read(self):
        with self.db.transaction(write=False) as session:
            ctx = Ctx(session, system_principal("test"), self.clock.now())
            requests = list(session.execute(select(BreakGlassRequest)).scalars())
            decisions = list(session.execute(select(BreakGlassDecision)).scalars())
            deployments = list(session.execute(select(Deployment)).scalars())
            team = access.owner(ctx, SERVICE).team_id
            leaders = access.leaders(ctx, team)
            held = {
                r.id: approvals.grant(breakglass.to_domain(ctx, r), ctx.now, leaders)
                for r in requests
            }
            session.expunge_all()
        by_request: dict[int, list[BreakGlassDecision]] = {}
        for d in decisions:
            by_request.setdefault(d.request_id, []).append(d)
        return requests, by_request, decisions, deployments, held

    # --- rules ----------------------------------------------------------------------

    @rule(
        requester=st.sampled_from(REQUESTERS),
        stage=st.sampled_from(["beta", "prod"]),
        i=st.integers(0, 9),
    )
    def request(self, requester, stage, i):
        row = self.attempt(
            breakglass.request,
            SERVICE,
            stage,
            self.pick(stage, i),
            "EU card fix",
            str(self.ticket),
            as_=requester,
        )
        if row is not None:
            self.model.requesters[row.id] = requester

    def _approve(self, i: int, who: str, other: str = "", j: int = 0) -> None:
        request_id = self.request_id(i)
        with self.db.transaction(write=False) as session:
            row = session.get(BreakGlassRequest, request_id)
            target = {"service": row.service_key, "stage": row.stage, "digest": row.digest}
        if other == "digest":
            target["digest"] = self.digest(j)
        elif other == "stage":
            target["stage"] = "beta" if target["stage"] == "prod" else "prod"
        elif other == "service":
            target["service"] = "search"
        self.attempt(breakglass.approve, request_id, **target, as_=who)

    @precondition(lambda self: self.model.requesters)
    @rule(i=st.integers(0, 9), who=st.sampled_from(PEOPLE))
    def approve(self, i, who):
        self._approve(i, who)

    @precondition(lambda self: self.model.requesters)
    @rule(i=st.integers(0, 9), who=st.sampled_from(["leo", "ada", "lea", "max"]))
    def approve_as_a_likely_approver(self, i, who):
        """Approvals by people who usually may: most histories need a grant to test."""
        self._approve(i, who)

    @precondition(lambda self: self.model.requesters)
    @rule(
        i=st.integers(0, 9),
        who=st.sampled_from(PEOPLE),
        other=st.sampled_from(["digest", "stage", "service"]),
        j=st.integers(0, 9),
    )
    def approve_another_promotion(self, i, who, other, j):
        self._approve(i, who, other, j)

    @precondition(lambda self: self.model.requesters)
    @rule(i=st.integers(0, 9), who=st.sampled_from(PEOPLE))
    def deny(self, i, who):
        row = self.attempt(breakglass.deny, self.request_id(i), "wait", as_=who)
        if row is not None:
            self.model.ended.add(row.id)

    @precondition(lambda self: self.model.requesters)
    @rule(i=st.integers(0, 9), who=st.sampled_from(PEOPLE))
    def revoke(self, i, who):
        self.attempt(breakglass.revoke, self.request_id(i), as_=who)

    @rule(who=st.sampled_from(MOVABLE), lead=st.booleans())
    def change_role(self, who, lead):
        team = "acme" if who == "leo" else "payments"
        self.call(accounts.set_membership, team, who, "leader" if lead else "engineer")
        (self.model.leaders.add if lead else self.model.leaders.discard)(who)

    @rule(minutes=st.sampled_from([1, 20, 59, 61, 4 * 60 + 1]))
    def move_clock(self, minutes):
        self.clock.advance(minutes=minutes)

    @rule(minutes=st.sampled_from([61, 4 * 60 + 1]))
    def move_clock_across_an_expiry(self, minutes):
        """Just past a request's 1 h or a grant's 4 h: drawn often, as expiries are where
        approvals must stop counting."""
        self.clock.advance(minutes=minutes)

    @rule()
    def run_worker(self):
        if self.worker is None:  # built once per history: building one takes a while
            self.worker = Worker(self.db, clock=self.clock)
        self.worker.run_until_idle()

    def teardown(self):
        if self.worker is not None:
            self.worker.close()

    @rule(author=st.sampled_from(AUTHORS))
    def new_version(self, author):
        self.call(self._register, f"v{self.versions}", author)

    @rule(i=st.integers(0, 9), author=st.sampled_from(AUTHORS))
    def rebuild(self, i, author):
        """The same artifact again with another digest: requests for the old one end."""
        self.call(self._register, self.model.artifacts[self.digest(i)], author)

    @rule(scope=st.sampled_from(SCOPES), hours=st.sampled_from([1, 3, 6]))
    def open_window(self, scope, hours):
        self.call(self._freeze, *scope, hours)

    @precondition(lambda self: self.model.windows)
    @rule(i=st.integers(0, 9))
    def close_window(self, i):
        uids = list(self.model.windows)  # in the order opened: uids are random
        uid = uids[i % len(uids)]
        self.attempt(windows.delete_window, uid)  # the worker may have expired it already
        del self.model.windows[uid]

    @rule(who=st.sampled_from(REQUESTERS))
    def promote_to_prod(self, who):
        """What runs in beta into prod: the promotion break-glass is mostly about."""
        self._promote("prod", self.beta, who)

    @rule(
        stage=st.sampled_from(["beta", "prod"]),
        i=st.integers(0, 9),
        who=st.sampled_from(REQUESTERS),
    )
    def promote(self, stage, i, who):
        self._promote(stage, self.pick(stage, i), who)

    def _promote(self, stage: str, digest: str, who: str) -> None:
        now = self.clock.now()
        requests, by_request, *_ = self.read()
        holders = {
            r.id
            for r in requests
            if (r.stage, r.digest) == (stage, digest)
            and model_holds(self.model, r, by_request.get(r.id, []), now)
        }
        blocked = self.model.blocked(stage, now)
        was_open = self._open_requests(lambda row: True)
        result = self.attempt(pipelines.promote, SERVICE, stage, digest, as_=who)
        if result is None or result[1] is None:
            return
        deployment = result[1]
        # Legitimate: no window, or a window lifted by a grant the model agrees on, spent here.
        ok = not blocked or deployment.break_glass_id in holders
        event("a promotion went through a block window" if blocked else "a promotion")
        self.model.promotions[deployment.id] = ok
        if deployment.break_glass_id is not None:
            self.model.ended.add(deployment.break_glass_id)
        if stage == "beta":
            self.beta = digest
            # prod's candidate changed: open requests for another digest into prod end.
            self.model.ended |= {
                r.id
                for r in requests
                if r.stage == "prod" and r.digest != digest and r.id in was_open
            }

    @rule(stage=st.sampled_from(["beta", "prod"]), i=st.integers(0, 9))
    def gate(self, stage, i):
        digest = self.pick(stage, i)
        now = self.clock.now()
        decision = self.attempt(pipelines.gate, SERVICE, stage, digest, as_="vic")
        if decision is None or not decision.allowed or not self.model.blocked(stage, now):
            return
        requests, by_request, *_ = self.read()
        assert any(
            (r.stage, r.digest) == (stage, digest)
            and model_holds(self.model, r, by_request.get(r.id, []), now)
            for r in requests
        ), "the gate opened a block window without a grant the model agrees on"

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def the_invariants_hold(self):
        """One read of the database after every step, then each invariant over it."""
        found = self.read()
        self.note_when_the_rule_is_first_met(*found)
        self.no_promotion_passes_a_window_without_a_valid_grant(*found)
        self.a_grant_has_two_eligible_approvers_and_a_leader(*found)
        self.an_approval_never_carries_over(*found)
        self.expired_or_revoked_approvals_never_count(*found)

    def note_when_the_rule_is_first_met(self, requests, by_request, *_):
        now = self.clock.now()
        for row in requests:
            found = eligible_approvers(self.model, row, by_request.get(row.id, []))
            if row.id not in self.model.ended and len(found) >= 2 and found & self.model.leaders:
                self.model.first_met.setdefault(row.id, now)

    def no_promotion_passes_a_window_without_a_valid_grant(self, *found):
        """Caught: ``pipelines.promote`` not spending the grant (its ``breakglass.use``
        call replaced by ``None``): the promotion went through the window with no grant
        recorded as spent."""
        *_, deployments, _ = found
        for deployment in deployments:
            assert self.model.promotions.get(deployment.id) is True, (
                f"deployment {deployment.id} of {deployment.digest} into {deployment.stage} "
                "passed a block window without a grant the model agrees on"
            )

    def a_grant_has_two_eligible_approvers_and_a_leader(
        self, requests, by_request, decisions, deployments, held
    ):
        """Caught: the version's author counting as an approver (``_counting``'s
        exclusion and ``approve``'s ``author_approval`` refusal removed)."""
        for row in requests:
            grant = held[row.id]
            if grant is None:
                continue
            event("a grant is held")
            eligible = eligible_approvers(self.model, row, by_request.get(row.id, []))
            assert len(set(grant.approvers)) == len(grant.approvers) >= 2
            assert set(grant.approvers) <= eligible, (grant.approvers, eligible)
            assert set(grant.leaders) & self.model.leaders
            assert set(grant.leaders) <= set(grant.approvers)

    def an_approval_never_carries_over(self, requests, by_request, decisions, deployments, held):
        """Caught: ``approvals.approve`` accepting a target other than the request's (its
        ``wrong_target`` check and ``_counting``'s target filter removed); and
        ``breakglass.candidate_changed`` returning early, so a grant outlived a new version
        in the stage before."""
        rows = {r.id: r for r in requests}
        for d in decisions:
            row = rows[d.request_id]
            assert (d.service_key, d.stage, d.digest) == (row.service_key, row.stage, row.digest)
        for row in requests:
            grant = held[row.id]
            if grant is None:
                continue
            assert grant.target == approvals.Target(row.service_key, row.stage, row.digest)
            assert row.id not in self.model.ended, f"request {row.id} ended but holds a grant"

    def expired_or_revoked_approvals_never_count(
        self, requests, by_request, decisions, deployments, held
    ):
        """Caught: ``approvals._counting`` counting revoked approvals (``a.live`` dropped);
        ``approvals.status`` never reporting GRANT_EXPIRED; and, before it was fixed, a
        revocation moving the grant's 4 h expiry later (the rule re-met by a later
        approval restarted the clock)."""
        now = self.clock.now()
        for row in requests:
            grant = held[row.id]
            if grant is None:
                continue
            rows = by_request.get(row.id, [])
            for approver in grant.approvers:
                assert any(
                    d.actor == approver
                    and d.revoked_at is None
                    and d.at < row.requested_at + REQUEST_TTL
                    for d in rows
                    if d.kind == "approve"
                ), f"{approver}'s approval is revoked or came after the request expired"
            first = self.model.first_met[row.id]
            assert grant.expires_at <= first + GRANT_TTL, "the grant's clock moved later"
            assert now < grant.expires_at


# Small enough to run in well under a minute per backend; CI derandomises (tests/conftest.py).
BUDGET = settings(
    max_examples=25,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_break_glass_invariants_hold_through_the_services(db):
    machine = type("Machine", (BreakGlassMachine,), {"db": db})
    run_state_machine_as_test(machine, settings=BUDGET)
