"""Who may do what.

The first half is the proof that a viewer's token cannot change anything anywhere in
the API: every state-changing operation is taken from the app's own OpenAPI
description (so an endpoint added tomorrow is covered without editing this file), and
each is sent schema-valid requests that point at real objects, with a viewer's token
and with an admin's viewer-scoped token. None may succeed, and afterwards every table
and the audit trail are exactly as they were.

The second half checks the role rules at the service layer, where authorisation lives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import select, text

from mechanisms.app import create_app
from mechanisms.core import accounts, audit, webhooks
from mechanisms.core.clock import ManualClock
from mechanisms.core.context import Ctx
from mechanisms.core.db import Base, Database
from mechanisms.core.errors import Forbidden, InvalidInput, NotAuthenticated
from mechanisms.core.identity import ANONYMOUS, Principal, Role, system_principal
from mechanisms.core.permissions import require_site_role, require_team_role, site_role, team_role
from mechanisms.core.tables import Delivery, Event, Team

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
VIEWER_TOKENS = ["vic", "vic-viewer-scope", "ada-viewer-scope"]
# A POST that only reads (OFREP evaluation is a POST by protocol) says so in its
# OpenAPI description; it may answer a viewer, and must still change nothing.
READ_ONLY_MARK = "x-mech-read-only"
# An operation whose credential is in the body (PagerDuty's routing_key) says so; a token
# plays no part there, so it answers in its protocol's shape and never with 403. It must
# still change nothing for requests that carry no real credential.
CREDENTIAL_MARK = "x-mech-credential"

# The operations are read from the app's OpenAPI description, as a client would.
OPENAPI = create_app(Database(f"sqlite:///{tempfile.gettempdir()}/mech-openapi-only.db")).openapi()
SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
MUTATING_OPERATIONS = sorted(
    (method.upper(), path, bool(operation.get(READ_ONLY_MARK)))
    for path, operations in OPENAPI["paths"].items()
    for method, operation in operations.items()
    if method.upper() in MUTATING
)
OWN_CREDENTIAL = {
    (method.upper(), path)
    for path, operations in OPENAPI["paths"].items()
    for method, operation in operations.items()
    if operation.get(CREDENTIAL_MARK)
}


# --- helpers -----------------------------------------------------------------------


def dump(db: Database) -> dict[str, list[str]]:
    """Every row of every table, in a stable order."""
    with db.engine.connect() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(table.select()))
            for table in Base.metadata.sorted_tables
        }


def audit_count(db: Database) -> int:
    with db.transaction(write=False) as session:
        return audit.count(session)


def add_dead_delivery(db: Database, clock: ManualClock, target: str) -> int:
    with db.transaction() as session:
        event = Event(
            type="identity.user_created",
            object_type="user",
            object_id="1",
            payload={},
            actor="test",
            occurred_at=clock.now(),
            fanned_out=True,
        )
        session.add(event)
        session.flush()
        delivery = Delivery(
            event_id=event.id,
            target=target,
            object_key="user:1",
            status="dead",
            attempts=8,
            next_attempt_at=clock.now(),
            last_error="HTTP 500",
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def existing_values(db: Database) -> dict[str, list[Any]]:
    """Values that name real objects, by the parameter and field names the API uses.
    A parameter this does not know (a new endpoint's) still gets generated values;
    `*_id` ones also try the smallest ids, which name the first rows of any table."""
    with db.engine.connect() as conn:

        def column(sql: str) -> list[Any]:
            return [r[0] for r in conn.execute(text(sql))]

        users = column("SELECT username FROM users")
        teams = column("SELECT slug FROM teams")
        return {
            "username": users,
            "user": users,
            "slug": teams,
            "team": teams,
            "parent": teams,
            "token_id": column("SELECT id FROM api_tokens"),
            "webhook_id": column("SELECT id FROM webhooks"),
            "delivery_id": column("SELECT id FROM deliveries"),
        }


def _values_for(name: str, known: dict[str, list[Any]]) -> st.SearchStrategy[Any] | None:
    if known.get(name):
        return st.sampled_from(known[name])
    # "owner_team", "reviewer_user", …: a team or a person by another name.
    for kind in ("team", "user", "username"):
        if name.endswith(f"_{kind}"):
            return st.sampled_from(known[kind])
    if name == "id" or name.endswith("_id"):
        return st.integers(min_value=1, max_value=5)
    return None


def requests_for(method: str, path: str, known: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """Schema-valid requests for one operation; path parameters and well-known body
    fields point at existing objects, so the request gets as far as authorisation."""
    operation = SCHEMA[path][method]
    names = [p.name for p in operation.path_parameters]
    fixed = {n: s for n in names if (s := _values_for(n, known)) is not None}

    def with_real_body_fields(case: Any) -> st.SearchStrategy[Any]:
        if not isinstance(case.body, dict):
            return st.just(case)
        fields = {k: s for k in case.body if (s := _values_for(k, known)) is not None}
        if not fields:
            return st.just(case)

        def point(values: dict[str, Any]) -> Any:
            case.body = {**case.body, **values}
            return case

        return st.one_of(st.just(case), st.fixed_dictionaries(fields).map(point))

    return (
        st.fixed_dictionaries(fixed)
        .flatmap(
            lambda params: operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters=params or None
            )
        )
        .flatmap(with_real_body_fields)
    )


# --- a viewer's token changes nothing ---------------------------------------------


def test_the_api_has_state_changing_operations_to_check(client):
    assert client.get("/openapi.json").json() == OPENAPI
    # A guard against this proof becoming vacuous (e.g. the description moving).
    assert len(MUTATING_OPERATIONS) >= 9
    assert ("POST", "/api/v1/users", False) in MUTATING_OPERATIONS


@pytest.mark.parametrize(
    "method, path, read_only",
    [pytest.param(m, p, r, id=f"{m} {p}") for m, p, r in MUTATING_OPERATIONS],
)
def test_a_viewer_token_cannot_change_anything(db, clock, org, client, method, path, read_only):
    with db.transaction() as session:
        webhooks.create(
            Ctx(session, system_principal("test"), clock.now()),
            "https://hooks.example.com/h",
            ["*"],
        )
    add_dead_delivery(db, clock, "webhook:1")
    # Using a token stamps its last use; do that first so it is not counted as a change.
    for who in VIEWER_TOKENS:
        assert client.get("/api/v1/me", headers=org.header(who)).status_code == 200
    before, audit_before = dump(db), audit_count(db)
    known = existing_values(db)
    statuses: dict[str, list[int]] = {who: [] for who in VIEWER_TOKENS}

    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=requests_for(method, path, known), who=st.sampled_from(VIEWER_TOKENS))
    def attempt(case: Any, who: str) -> None:
        response = case.call(app=client.app, headers=org.header(who))
        statuses[who].append(response.status_code)
        if read_only and 200 <= response.status_code < 300:
            return
        assert not 200 <= response.status_code < 300, (
            f"{who} changed something with {method} {case.formatted_path}: "
            f"{response.status_code} {response.text[:300]}"
        )
        assert 400 <= response.status_code < 500, response.text[:300]
        if (method, path) not in OWN_CREDENTIAL:
            assert set(response.json()) == {"error"}

    attempt()
    assert dump(db) == before, f"{method} {path} by a viewer changed stored state"
    assert audit_count(db) == audit_before
    # Where the requests could name real objects, they reached authorisation: at least
    # one was refused for the role or the scope (403), not only as missing or malformed.
    params = [p.name for p in SCHEMA[path][method].path_parameters]
    if not read_only and (method, path) not in OWN_CREDENTIAL and all(known.get(p) for p in params):
        every = [s for codes in statuses.values() for s in codes]
        assert 403 in every, f"no 403 among {sorted(set(every))}"


@pytest.mark.parametrize("who", VIEWER_TOKENS)
def test_a_viewer_token_still_reads(db, org, client, who):
    for path in ["/api/v1/me", "/api/v1/teams", "/api/v1/users", "/api/v1/audit"]:
        assert client.get(path, headers=org.header(who)).status_code == 200, path
    assert client.get("/api/v1/teams/payments/members", headers=org.header(who)).status_code == 200


# --- role rules in the service layer ------------------------------------------------


@pytest.fixture
def as_(db: Database, clock: ManualClock, org) -> Callable[[str], Principal]:
    """The principal behind one of the seeded tokens, exactly as the API would see it."""

    def principal(who: str) -> Principal:
        with db.transaction(write=False) as session:
            return accounts.check_token(session, org.tokens[who], clock.now()).principal

    return principal


def signed_in(principal: Principal) -> Principal:
    """The same person through a web session, where no token scope applies."""
    return Principal(
        user_id=principal.user_id,
        username=principal.username,
        via="session",
        is_site_admin=principal.is_site_admin,
        is_bot=principal.is_bot,
    )


@pytest.fixture
def roles(db: Database, clock: ManualClock) -> Callable[[Principal, str], Role | None]:
    def role_in(principal: Principal, slug: str) -> Role | None:
        with db.transaction(write=False) as session:
            ctx = Ctx(session, principal, clock.now())
            team = session.execute(select(Team).where(Team.slug == slug)).scalar_one()
            return team_role(ctx, team.id)

    return role_in


@pytest.fixture
def checkout(run) -> None:
    """A team two levels below the organisation: acme > payments > checkout."""
    run(accounts.create_team, "checkout", "Checkout", parent="payments")


def test_roles_flow_down_the_team_tree(as_, roles, checkout):
    leo, eve, vic = as_("leo"), as_("eve"), as_("vic")
    assert [roles(leo, t) for t in ("acme", "payments", "checkout")] == [Role.LEADER] * 3
    assert [roles(vic, t) for t in ("acme", "payments", "checkout")] == [Role.VIEWER] * 3
    # Eve is an engineer in payments and what is below it, and nothing above.
    assert roles(eve, "acme") is None
    assert roles(eve, "payments") == roles(eve, "checkout") == Role.ENGINEER


def test_the_highest_role_along_the_tree_wins(run, as_, roles, checkout):
    run(accounts.set_membership, "acme", "eve", "viewer")
    run(accounts.set_membership, "checkout", "eve", "leader")
    eve = signed_in(as_("eve"))  # her token is engineer-scoped; show her roles unscoped
    assert roles(eve, "acme") == Role.VIEWER
    assert roles(eve, "payments") == Role.ENGINEER
    assert roles(eve, "checkout") == Role.LEADER
    # A lower role in a child team does not lower what the parent grants.
    run(accounts.set_membership, "payments", "leo", "viewer")
    assert roles(as_("leo"), "payments") == Role.LEADER


def test_a_leader_leads_but_does_not_administer_teams_below(run, as_, checkout):
    leo = as_("leo")
    with pytest.raises(Forbidden, match="needs the admin role in team payments"):
        run(accounts.set_membership, "payments", "vic", "engineer", as_=leo)
    with pytest.raises(Forbidden):
        run(accounts.create_team, "fraud", "Fraud", parent="payments", as_=leo)


def test_a_team_admin_administers_that_subtree_only(run, db, clock, as_, roles, checkout):
    run(accounts.set_membership, "payments", "eve", "admin")
    eve = as_("eve")
    assert roles(eve, "checkout") == Role.ENGINEER  # her token is engineer-scoped
    eve_session = signed_in(eve)
    assert roles(eve_session, "checkout") == Role.ADMIN
    run(accounts.set_membership, "checkout", "vic", "engineer", as_=eve_session)
    run(accounts.create_team, "fraud", "Fraud", parent="payments", as_=eve_session)
    with pytest.raises(Forbidden, match="team acme"):
        run(accounts.set_membership, "acme", "vic", "engineer", as_=eve_session)
    # Administering a team is not administering the site.
    with db.transaction(write=False) as session:
        assert site_role(Ctx(session, eve_session, clock.now())) == Role.LEADER
    with pytest.raises(Forbidden, match="for the whole site"):
        run(accounts.create_user, "mallory", as_=eve_session)
    with pytest.raises(Forbidden):
        run(accounts.create_team, "rival", "Rival", as_=eve_session)
    with pytest.raises(Forbidden):
        run(webhooks.create, "https://example.com/h", ["*"], as_=eve_session)


def test_a_site_admin_is_admin_everywhere(run, as_, roles, checkout):
    ada = as_("ada")
    assert [roles(ada, t) for t in ("acme", "payments", "checkout")] == [Role.ADMIN] * 3
    run(accounts.set_membership, "checkout", "vic", "leader", as_=ada)
    run(accounts.create_user, "newbie", as_=ada)
    run(webhooks.create, "https://example.com/h", ["*"], as_=ada)


def test_a_token_scope_caps_the_role(run, db, clock, as_, roles, checkout):
    ada_reader = as_("ada-viewer-scope")
    assert [roles(ada_reader, t) for t in ("acme", "payments")] == [Role.VIEWER] * 2
    with db.transaction(write=False) as session:
        assert site_role(Ctx(session, ada_reader, clock.now())) == Role.VIEWER
    with pytest.raises(Forbidden, match=r"limited to viewer"):
        run(accounts.set_membership, "payments", "vic", "engineer", as_=ada_reader)
    with pytest.raises(Forbidden, match=r"limited to viewer"):
        run(accounts.create_user, "mallory", as_=ada_reader)
    # The scope caps; it never raises: an admin-scoped token of an engineer is an engineer.
    _, secret = run(accounts.create_token, "eve", "wide", "admin")
    with db.transaction(write=False) as session:
        eve_wide = accounts.check_token(session, secret, clock.now()).principal
    assert roles(eve_wide, "payments") == Role.ENGINEER
    assert roles(eve_wide, "acme") is None


def test_a_token_cannot_create_a_token_above_its_scope(run, as_):
    leo = as_("leo")  # leader-scoped
    with pytest.raises(Forbidden, match="leader-scoped credential cannot create a admin-scoped"):
        run(accounts.create_token, "leo", "wider", "admin", as_=leo)
    token, _ = run(accounts.create_token, "leo", "same", "leader", as_=leo)
    assert token.scope == "leader"
    token, _ = run(accounts.create_token, "leo", "narrower", "viewer", as_=leo)
    assert token.scope == "viewer"
    # A viewer-scoped token may not create tokens at all, not even viewer-scoped ones.
    for who in ("ada-viewer-scope", "vic-viewer-scope", "vic"):
        with pytest.raises(Forbidden):
            run(accounts.create_token, as_(who).username, "again", "viewer", as_=as_(who))
    # Nor may anyone but a site admin make tokens for somebody else.
    with pytest.raises(Forbidden, match="for the whole site"):
        run(accounts.create_token, "eve", "for-eve", "viewer", as_=leo)
    run(accounts.create_token, "eve", "for-eve", "viewer", as_=as_("ada"))


def test_tokens_are_managed_by_their_owner_or_a_site_admin(run, db, clock, as_):
    with db.transaction(write=False) as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        eve_token_id = accounts.list_tokens(ctx, "eve")[0].id
    with pytest.raises(Forbidden):
        run(accounts.revoke_token, eve_token_id, as_=as_("leo"))
    with pytest.raises(Forbidden):
        run(accounts.list_tokens, "eve", as_=as_("leo"))
    with pytest.raises(Forbidden):
        run(accounts.revoke_token, eve_token_id, as_=as_("ada-viewer-scope"))
    assert run(accounts.revoke_token, eve_token_id, as_=as_("eve")).revoked_at is not None


def test_bots_act_through_tokens_only(run, db, clock, as_, roles):
    robot = as_("robot")
    assert robot.is_bot and not robot.is_human
    assert roles(robot, "payments") == Role.ENGINEER
    assert roles(robot, "acme") is None
    with db.transaction(write=False) as session:
        require_team_role(
            Ctx(session, robot, clock.now()), _team_id(session, "payments"), Role.ENGINEER
        )
    with pytest.raises(Forbidden):
        run(accounts.set_membership, "payments", "vic", "viewer", as_=robot)
    with pytest.raises(InvalidInput, match="bots sign in with API tokens"):
        run(accounts.create_user, "robot2", is_bot=True, password="long enough password")
    with pytest.raises(InvalidInput, match="bots sign in with API tokens"):
        run(accounts.set_password, "robot", "long enough password")
    with pytest.raises(NotAuthenticated):
        run(accounts.login, "robot", "", accounts.TOKEN_USE_RESOLUTION)


def test_nobody_unauthenticated_gets_anything(run, db, clock, org):
    with db.transaction(write=False) as session:
        ctx = Ctx(session, ANONYMOUS, clock.now())
        with pytest.raises(NotAuthenticated):
            require_site_role(ctx, Role.VIEWER)
        with pytest.raises(NotAuthenticated):
            require_team_role(ctx, _team_id(session, "acme"), Role.VIEWER)
    with pytest.raises(NotAuthenticated):
        run(accounts.list_teams, as_=ANONYMOUS)


def test_roles_are_site_wide_only_up_to_leader(db, clock, as_):
    with db.transaction(write=False) as session:
        assert site_role(Ctx(session, as_("leo"), clock.now())) == Role.LEADER
        assert site_role(Ctx(session, as_("ada"), clock.now())) == Role.ADMIN
        assert site_role(Ctx(session, as_("vic"), clock.now())) == Role.VIEWER


def _team_id(session: Any, slug: str) -> int:
    return session.execute(select(Team.id).where(Team.slug == slug)).scalar_one()
