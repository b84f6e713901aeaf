"""Who may do what.

The first half is the proof that a viewer's token cannot change anything anywhere in
the API: every state-changing operation is taken from the app's own OpenAPI
description (so an endpoint added tomorrow is covered without editing this file), and
each is sent schema-valid requests whose path names a real object of the demo
organisation (every mechanism seeds one of each kind), with a viewer's token and with
an admin's viewer-scoped token. Each must be refused for the role (403; 401 without a
token), and afterwards every table and the audit trail are exactly as they were. An
operation answered only 404 or 422 never reached its permission check, and fails the
proof until its object is seeded and named in PATH_OBJECTS.

The second half checks the role rules at the service layer, where authorisation lives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import select, text

from mechanisms import demo, modules
from mechanisms.app import attach, create_app
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


# --- a viewer's token changes nothing ---------------------------------------------

# The demo organisation (every mechanism seeds its part) plus what the demo leaves out;
# its viewer is vera, viewer of the whole organisation, and alice is its site admin.
DEMO_VIEWER_TOKENS = ["vera", "vera-viewer-scope", "alice-viewer-scope"]

# Which real object each path parameter names: (parameter, part of the path or "") to the
# query giving one; the first entry whose path part is in the operation's path wins.
PATH_OBJECTS: list[tuple[str, str, str]] = [
    ("slug", "", "SELECT slug FROM teams WHERE slug = 'payments'"),
    ("username", "", "SELECT username FROM users WHERE username = 'erin'"),
    ("token_id", "", "SELECT id FROM api_tokens ORDER BY id"),
    ("webhook_id", "", "SELECT id FROM webhooks"),
    ("delivery_id", "", "SELECT id FROM deliveries"),
    ("app", "", "SELECT key FROM flag_apps"),
    ("environment", "", "SELECT key FROM flag_environments ORDER BY position"),
    ("flag", "", "SELECT f.key FROM flags f JOIN flag_versions v ON v.flag_id = f.id"),
    ("number", "", "SELECT v.number FROM flag_versions v JOIN flags f ON v.flag_id = f.id"),
    ("key", "/segments/", "SELECT key FROM flag_segments"),
    ("key", "/scaling/targets/", "SELECT key FROM ops_scalable_targets"),
    ("key", "/ofrep/", "SELECT key FROM flags"),
    ("deployment_id", "", "SELECT id FROM flag_deployments"),
    ("experiment_id", "", "SELECT id FROM flag_experiments"),
    ("request_id", "/change-requests/", "SELECT id FROM flag_change_requests"),
    ("request_id", "/breakglass/", "SELECT id FROM deploys_breakglass"),
    ("service", "/deploys/", "SELECT service_key FROM deploys_pipelines"),
    ("service", "", "SELECT key FROM ops_services"),
    ("name", "/ingest-keys/", "SELECT name FROM ops_ingest_keys"),
    ("name", "/integration-keys/", "SELECT name FROM ops_integration_keys"),
    ("name", "/oncall/schedules/", "SELECT name FROM ops_oncall_schedules"),
    ("name", "/oncall/policies/", "SELECT name FROM ops_escalation_policies"),
    ("name", "/scaling/policies/", "SELECT name FROM ops_scaling_policies"),
    ("name", "/silences/", "SELECT name FROM ops_silences"),
    ("name", "/alarms/", "SELECT name FROM ops_alarms"),
    ("override_id", "", "SELECT :override"),
    ("page_id", "", "SELECT id FROM ops_pages"),
    ("ticket_id", "", "SELECT id FROM ops_tickets"),
    ("window_id", "", "SELECT uid FROM deploys_windows"),
    ("change_id", "", "SELECT id FROM deploys_protected_changes"),
    ("review_id", "", "SELECT id FROM deploys_reviews"),
    ("doc", "", "SELECT slug FROM docs_documents"),
    ("comment_id", "", "SELECT id FROM docs_comments"),
    ("meeting_id", "", "SELECT id FROM docs_meetings"),
]
# Body fields that name an object, so a create gets as far as the owner's permission.
BODY_OBJECTS: dict[str, str] = {
    "owner_team": "SELECT slug FROM teams WHERE slug = 'payments'",
    "team": "SELECT slug FROM teams WHERE slug = 'payments'",
    "parent": "SELECT slug FROM teams WHERE slug = 'payments'",
    "user": "SELECT username FROM users WHERE username = 'erin'",
    "username": "SELECT username FROM users WHERE username = 'erin'",
    "service": "SELECT key FROM ops_services",
    "target": "SELECT key FROM ops_scalable_targets",
    "policy": "SELECT name FROM ops_escalation_policies",
    # A well-formed new name, as slugs are checked before permissions.
    "slug": "SELECT 'new-team'",
}


def demo_objects(client: TestClient, admin: dict[str, str], now: datetime) -> str:
    """What the demo leaves out, added as its admin would; returns a schedule override id."""
    override = {
        "start": (now + timedelta(days=1)).isoformat(),
        "end": (now + timedelta(days=2)).isoformat(),
        "user": "erin",
    }
    for path, body in [
        ("/api/v1/webhooks", {"url": "https://hooks.example.com/h"}),
        ("/api/v1/ops/services/checkout/ingest-keys", {"name": "ci"}),
        ("/api/v1/ops/alerts/integration-keys", {"service": "checkout", "name": "am"}),
        ("/api/v1/ops/oncall/schedules/payments-amer/overrides", override),
    ]:
        answer = client.post(path, json=body, headers=admin)
        assert answer.status_code < 300, (path, answer.text)
    return answer.json()["override_ids"][0]


def path_values(db: Database, method: str, path: str, extra: dict[str, Any]) -> dict[str, Any]:
    values = {}
    with db.engine.connect() as conn:
        for param in [p.name for p in SCHEMA[path][method].path_parameters]:
            for name, part, sql in PATH_OBJECTS:
                if name == param and part in path:
                    found = conn.execute(text(sql), extra).first()
                    if found is not None:
                        values[param] = found[0]
                    break
    return values


def body_values(db: Database) -> dict[str, Any]:
    with db.engine.connect() as conn:
        return {field: conn.execute(text(sql)).scalar() for field, sql in BODY_OBJECTS.items()}


def table_sizes(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one()
            for t in Base.metadata.sorted_tables
        }


def viewer_requests(method: str, path: str, params: dict[str, Any], body: dict[str, Any]):
    """Schema-valid requests at real objects: the path names them, and so do the body's
    fields that name a team, a person or a service."""

    def pointed(case: Any) -> Any:
        if isinstance(case.body, dict):
            case.body = {**case.body, **{k: v for k, v in body.items() if k in case.body}}
        return case

    return (
        SCHEMA[path][method]
        .as_strategy(GenerationMode.POSITIVE, path_parameters=params or None)
        .map(pointed)
    )


@pytest.fixture
def demo_client(app, db, clock) -> Iterator[TestClient]:
    attach(app, db, clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def attempts(
    client: TestClient,
    operation: tuple[str, str, bool],
    params: dict[str, Any],
    body: dict[str, Any],
    headers: dict[str, dict[str, str]],
) -> tuple[dict[str, set[int]], list[str]]:
    """Each who's answers to schema-valid requests at real objects, and what went wrong:
    anything but a 4xx in the API's error shape, unless the operation only reads."""
    method, path, read_only = operation
    statuses: dict[str, set[int]] = {who: set() for who in headers}
    problems: list[str] = []

    @settings(
        max_examples=4,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=viewer_requests(method, path, params, body))
    def attempt(case: Any) -> None:
        for who, header in headers.items():
            response = case.call(app=client.app, headers=header)
            statuses[who].add(response.status_code)
            if read_only and response.status_code < 300:
                continue
            refused = 400 <= response.status_code < 500
            if refused and (method, path) not in OWN_CREDENTIAL:
                refused = set(response.json()) == {"error"}
            if not refused:
                problems.append(
                    f"{method} {case.formatted_path} by {who}: "
                    f"{response.status_code} {response.text[:200]}"
                )

    attempt()
    return statuses, problems


def test_a_viewer_token_cannot_change_anything(db, clock, demo_client):
    client = demo_client
    modules.import_all()
    demo.seed(db, clock)
    with db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), clock.now())
        tokens = {
            "alice": accounts.create_token(ctx, "alice", "admin", "admin")[1],
            "vera": accounts.create_token(ctx, "vera", "wide", "admin")[1],
            "vera-viewer-scope": accounts.create_token(ctx, "vera", "read", "viewer")[1],
            "alice-viewer-scope": accounts.create_token(ctx, "alice", "read", "viewer")[1],
        }
    headers = {who: {"Authorization": f"Bearer {tokens[who]}"} for who in DEMO_VIEWER_TOKENS}
    extra = {
        "override": demo_objects(
            client, {"Authorization": f"Bearer {tokens['alice']}"}, clock.now()
        )
    }
    add_dead_delivery(db, clock, "webhook:1")
    # Using a token stamps its last use; do that first so it is not counted as a change.
    for header in headers.values():
        assert client.get("/api/v1/me", headers=header).status_code == 200
    before, audit_before = dump(db), audit_count(db)
    sizes, body = table_sizes(db), body_values(db)
    problems: list[str] = []
    not_exercised: list[str] = []
    for method, path, read_only in MUTATING_OPERATIONS:
        params = path_values(db, method, path, extra)
        statuses, wrong = attempts(
            client, (method, path, read_only), params, body, {**headers, "nobody": {}}
        )
        problems += wrong
        if table_sizes(db) != sizes or audit_count(db) != audit_before:
            problems.append(f"{method} {path} by a viewer changed stored state")
        if read_only or (method, path) in OWN_CREDENTIAL:
            continue
        # Reaching the permission check is a 403 for each viewer token and a 401 without one;
        # answers that are only 404 or 422 never tested the role.
        nobody = statuses.pop("nobody")
        if 401 not in nobody or not all(403 in codes for codes in statuses.values()):
            not_exercised.append(f"{method} {path} {params}: {statuses}, nobody: {nobody}")
    assert not problems, "\n".join(problems)
    assert dump(db) == before
    assert not not_exercised, (
        f"{len(not_exercised)} operations never reached their permission check; seed an "
        "object for them and name it in PATH_OBJECTS or BODY_OBJECTS:\n" + "\n".join(not_exercised)
    )


def test_the_api_has_state_changing_operations_to_check(client):
    assert client.get("/openapi.json").json() == OPENAPI
    # A guard against this proof becoming vacuous (e.g. the description moving).
    assert len(MUTATING_OPERATIONS) >= 9
    assert ("POST", "/api/v1/users", False) in MUTATING_OPERATIONS


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
