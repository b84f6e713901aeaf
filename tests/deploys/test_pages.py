"""The deploys pages on both databases: the pipeline view with each gate's state, the
block calendar, break-glass from request to grant through the forms, and bad query
parameters answered with a 4xx page (the browser tests drive the same pages in Chromium)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mechanisms.deploys import pipelines, windows
from mechanisms.ops import alarms, tickets

from .conftest import PASSING, ship

WEEKEND = {
    "kind": "recurring",
    "rrule": "FREQ=WEEKLY;BYDAY=FR",
    "dtstart": "2026-01-02T15:00:00",
    "end_time": "09:00",
    "days_later": 3,
    "tz": "Europe/Berlin",
}


@pytest.fixture
def frozen(run, clock, checkout):
    """v1 baked in beta, then an org-wide freeze: prod is blocked by the window only."""
    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    clock.advance(minutes=31)
    run(windows.freeze, "org", "acme", clock.now() + timedelta(days=1), "year-end freeze")
    return run(tickets.create, "checkout", "EU cards fail", 2)


def test_the_pipeline_view_shows_the_running_version_and_the_blocked_gate(client, org, frozen):
    page = client.get("/deploys/services/checkout", headers=org.header("vic"))
    assert page.status_code == 200
    assert 'data-testid="gate-prod"' in page.text and "BLOCKED" in page.text
    assert "year-end freeze" in page.text
    assert 'data-testid="request-breakglass"' in page.text
    listed = client.get("/deploys", headers=org.header("vic")).text
    assert 'data-service="checkout"' in listed and "v1" in listed


def test_the_calendar_shows_a_weekend_window_in_the_zone_asked(client, org, run, checkout):
    run(windows.create_window, "service", "checkout", WEEKEND, "no weekend deploys")
    page = client.get(
        "/deploys/services/checkout/calendar?month=2026-01&tz=Europe/Berlin",
        headers=org.header("vic"),
    )
    assert page.status_code == 200
    cells = re.findall(r'<td class="([^"]*)"[^>]*data-date="([\d-]+)"', page.text)
    blocked = {day for classes, day in cells if "blocked" in classes}
    assert {"2026-01-10", "2026-01-11"} <= blocked and "2026-01-14" not in blocked
    assert "Fri 09 Jan 15:00 – Mon 12 Jan 09:00" in page.text
    assert "no weekend deploys" in page.text


def test_break_glass_through_the_forms_needs_two_people_and_a_leader(client, org, frozen):
    eve, leo, ada, vic = (org.header(u) for u in ("eve", "leo", "ada", "vic"))
    asked = client.post(
        "/deploys/services/checkout/breakglass",
        data={"stage": "prod", "version": "v1", "reason": "EU fix", "ticket": f"#{frozen.id}"},
        headers=eve,
        follow_redirects=False,
    )
    assert asked.status_code == 303, asked.text
    address = asked.headers["location"]
    request_id = address.rsplit("/", 1)[1]
    page = client.get(address, headers=vic).text
    assert "sha256:aaa" in page and "EU cards fail" in page and "Still needed: 2" in page
    refused = client.post(f"{address}/approve", data={"digest": "sha256:aaa"}, headers=vic)
    assert refused.status_code == 403
    stale = client.post(f"{address}/approve", data={"digest": "sha256:bbb"}, headers=leo)
    assert 400 <= stale.status_code < 500
    for who in (leo, ada):
        assert (
            client.post(
                f"{address}/approve", data={"digest": "sha256:aaa"}, headers=who
            ).status_code
            == 200
        )
    granted = client.get(f"/deploys/breakglass/{request_id}", headers=vic).text
    assert 'data-testid="status">granted' in granted


def test_an_author_is_named_and_a_denial_lifted_through_the_forms(client, org, run, frozen):
    eve, leo = org.header("eve"), org.header("leo")
    run(pipelines.register_version, "checkout", "v2", "sha256:nameless")
    run(pipelines.upload_tests, "checkout", "sha256:nameless", "integration", PASSING)
    new = "/deploys/services/checkout/breakglass/new?stage=beta&version=sha256:nameless"
    assert 'data-testid="name-author"' in client.get(new, headers=eve).text
    named = client.post(
        "/deploys/services/checkout/versions/author",
        data={"version": "sha256:nameless", "stage": "beta", "author": " SAM "},
        headers=eve,
        follow_redirects=False,
    )
    assert named.status_code == 303, named.text
    page = client.get(named.headers["location"], headers=eve).text
    assert "by sam" in page and 'data-testid="name-author"' not in page
    asked = client.post(
        "/deploys/services/checkout/breakglass",
        data={"stage": "prod", "version": "v1", "reason": "EU fix", "ticket": f"#{frozen.id}"},
        headers=eve,
        follow_redirects=False,
    )
    address = asked.headers["location"]
    assert client.post(f"{address}/deny", data={"reason": "Monday"}, headers=leo).status_code == 200
    denied = client.get(address, headers=leo).text
    assert "cannot ask again" in denied and 'data-testid="lift-denial"' in denied
    assert client.post(f"{address}/lift-denial", data={}, headers=eve).status_code == 403
    lifted = client.post(f"{address}/lift-denial", data={"reason": "ok"}, headers=leo)
    assert lifted.status_code == 200
    assert "the denial was lifted by leo" in client.get(address, headers=eve).text


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("/deploys/services/checkout/calendar?tz=Europe/Atlantis", 422),
        ("/deploys/services/checkout/calendar?month=2026-13", 422),
        ("/deploys/services/checkout/calendar?month=abc", 422),
        ("/deploys/services/checkout/calendar?stage=nope", 422),
        ("/deploys/services/nope", 404),
        ("/deploys/breakglass/0", 422),
        ("/deploys/breakglass/999", 404),
        ("/deploys/services/checkout/breakglass/new?stage=prod&version=nope", 404),
        ("/deploys/services/checkout/breakglass/new", 422),
    ],
)
def test_bad_query_parameters_are_a_4xx_page(client, org, checkout, address, status):
    page = client.get(address, headers=org.header("vic"))
    assert page.status_code == status, page.text
    assert page.headers["content-type"].startswith("text/html")


def test_a_freeze_from_the_calendar_form_and_bad_input(client, org, checkout):
    eve = org.header("eve")
    bad = client.post(
        "/deploys/services/checkout/freeze", data={"until": "soon", "reason": "x"}, headers=eve
    )
    assert bad.status_code == 422
    zone = client.post(
        "/deploys/services/checkout/freeze",
        data={"until": "2030-01-01T10:00", "tz": "Mars/Base", "reason": "x"},
        headers=eve,
    )
    assert zone.status_code == 422
    made = client.post(
        "/deploys/services/checkout/freeze",
        data={"until": "2030-01-01T10:00", "tz": "Europe/Berlin", "reason": "launch"},
        headers=eve,
        follow_redirects=False,
    )
    assert made.status_code == 303
    viewer = client.post(
        "/deploys/services/checkout/freeze",
        data={"until": "2030-01-01T10:00", "reason": "x"},
        headers=org.header("vic"),
    )
    assert viewer.status_code == 403
    assert "launch" in client.get("/deploys/services/checkout/calendar", headers=eve).text


def test_a_used_grant_opens_a_review_closed_through_its_form(client, org, run, frozen):
    leo, ada, eve = (org.header(u) for u in ("leo", "ada", "eve"))
    asked = client.post(
        "/deploys/services/checkout/breakglass",
        data={"stage": "prod", "version": "v1", "reason": "EU fix", "ticket": str(frozen.id)},
        headers=eve,
        follow_redirects=False,
    )
    address = asked.headers["location"]
    for who in (leo, ada):
        client.post(f"{address}/approve", data={"digest": "sha256:aaa"}, headers=who)
    _, deployment = run(pipelines.promote, "checkout", "prod", "v1")
    assert deployment is not None and deployment.break_glass_id is not None
    reviews = client.get("/deploys/reviews", headers=eve).text
    assert "What happened" in reviews
    [review_id] = re.findall(r'data-review="(\d+)" class="open"', reviews)
    blank = client.post(
        f"/deploys/reviews/{review_id}", data={"what_happened": "shipped", "why": " "}, headers=eve
    )
    assert blank.status_code == 422
    refused = client.post(
        f"/deploys/reviews/{review_id}",
        data={"what_happened": "shipped", "why": "SEV2"},
        headers=org.header("vic"),
    )
    assert refused.status_code == 403
    closed = client.post(
        f"/deploys/reviews/{review_id}",
        data={"what_happened": "shipped the EU fix", "why": "cards failed"},
        headers=eve,
        follow_redirects=False,
    )
    assert closed.status_code == 303
    page = client.get(address, headers=org.header("vic")).text
    assert "shipped the EU fix" in page and 'data-testid="status">used' in page


@pytest.mark.parametrize(
    ("address", "form"),
    [
        (
            "/deploys/services/checkout/breakglass",
            {"stage": "prod", "version": "v1", "ticket": "abc"},
        ),
        (
            "/deploys/services/checkout/breakglass",
            {"stage": "nope", "version": "v1", "ticket": "1"},
        ),
        (
            "/deploys/services/checkout/breakglass",
            {"stage": "prod", "version": "v9", "ticket": "1"},
        ),
        (
            "/deploys/services/checkout/breakglass",
            {"stage": "prod", "version": "v1", "drill": "maybe"},
        ),
        ("/deploys/breakglass/999/approve", {"digest": "sha256:aaa"}),
        ("/deploys/breakglass/999/deny", {"reason": "no"}),
        ("/deploys/reviews/999", {"what_happened": "a", "why": "b"}),
        ("/deploys/services/checkout/freeze", {"until": "2020-01-01T00:00", "reason": "past"}),
    ],
)
def test_bad_form_posts_are_refused_with_a_4xx(client, org, frozen, address, form):
    refused = client.post(address, data={"reason": "r", **form}, headers=org.header("eve"))
    assert 400 <= refused.status_code < 500, refused.text


@pytest.mark.parametrize(
    ("month", "tz", "status"),
    [
        ("1970-01", "Pacific/Kiritimati", 200),
        ("1970-01", "America/Los_Angeles", 200),
        ("2150-06", "UTC", 200),
        ("2199-11", "Etc/GMT%2B12", 200),
        ("1969-12", "UTC", 422),
        ("2199-12", "UTC", 422),
        ("0001-01", "UTC", 422),
        ("9999-12", "UTC", 422),
    ],
)
def test_the_calendar_shows_every_month_the_model_handles_and_refuses_the_rest(
    client, org, checkout, month, tz, status
):
    page = client.get(
        f"/deploys/services/checkout/calendar?month={month}&tz={tz}", headers=org.header("vic")
    )
    assert page.status_code == status, page.text
    if status != 200:
        assert "a month from 1970-01 to 2199-11" in page.text


def test_old_service_links_redirect_and_a_service_called_reviews_has_its_page(
    client, org, run, checkout
):
    vic = org.header("vic")
    moved = client.get("/deploys/checkout", headers=vic, follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (308, "/deploys/services/checkout")
    calendar = client.get(
        "/deploys/checkout/calendar?month=2026-01&tz=UTC", headers=vic, follow_redirects=False
    )
    assert (
        calendar.headers["location"] == "/deploys/services/checkout/calendar?month=2026-01&tz=UTC"
    )
    assert client.get("/deploys/checkout/calendar", headers=vic).status_code == 200
    assert client.get("/deploys/services/nope/anything", headers=vic).status_code == 404

    run(alarms.create_service, "reviews", "Reviews", "payments")
    run(pipelines.set_pipeline, "reviews", [{"name": "prod"}])
    page = client.get("/deploys/services/reviews", headers=vic)
    assert page.status_code == 200 and 'data-stage="prod"' in page.text
    assert "Follow-up reviews" in client.get("/deploys/reviews", headers=vic).text


def test_the_promote_button_promotes_an_open_gate_and_a_viewer_is_refused(
    client, org, run, checkout
):
    ship(run)
    eve, vic = org.header("eve"), org.header("vic")
    assert (
        'data-testid="promote-beta"' in client.get("/deploys/services/checkout", headers=eve).text
    )
    viewer_page = client.get("/deploys/services/checkout", headers=vic).text
    assert 'data-testid="promote-beta"' not in viewer_page
    form = {"stage": "beta", "version": "sha256:aaa"}
    assert (
        client.post("/deploys/services/checkout/promote", data=form, headers=vic).status_code == 403
    )
    assert run(pipelines.stage_states, "checkout")[0]["deployment"] is None
    done = client.post(
        "/deploys/services/checkout/promote", data=form, headers=eve, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/deploys/services/checkout")
    assert run(pipelines.stage_states, "checkout")[0]["deployment"]["digest"] == "sha256:aaa"


def test_a_blocked_promotion_deploys_nothing_and_a_grant_is_spent_by_the_button(
    client, org, run, frozen
):
    eve, leo, ada = (org.header(u) for u in ("eve", "leo", "ada"))
    page = client.get("/deploys/services/checkout", headers=eve).text
    assert 'data-testid="promote-prod"' not in page and 'data-testid="request-breakglass"' in page
    form = {"stage": "prod", "version": "sha256:aaa"}
    # Posted anyway (a page drawn before the freeze): refused with why, recorded as blocked,
    # nothing deployed.
    refused = client.post("/deploys/services/checkout/promote", data=form, headers=eve)
    assert refused.status_code == 409 and "year-end freeze" in refused.text
    assert run(pipelines.stage_states, "checkout")[1]["deployment"] is None
    assert run(pipelines.timeline, "checkout")[0].kind == "promotion_blocked"

    asked = client.post(
        "/deploys/services/checkout/breakglass",
        data={"stage": "prod", "version": "v1", "reason": "EU fix", "ticket": str(frozen.id)},
        headers=eve,
        follow_redirects=False,
    )
    address = asked.headers["location"]
    for who in (leo, ada):
        client.post(f"{address}/approve", data={"digest": "sha256:aaa"}, headers=who)
    page = client.get("/deploys/services/checkout", headers=eve).text
    assert 'data-testid="promote-prod"' in page and 'data-testid="spends-grant"' in page
    client.post("/deploys/services/checkout/promote", data=form, headers=eve)
    deployment = run(pipelines.stage_states, "checkout")[1]["deployment"]
    assert deployment["digest"] == "sha256:aaa" and deployment["break_glass"] is not None
    assert 'data-testid="status">used' in client.get(address, headers=eve).text
    # Spent: the same promotion is blocked again.
    assert (
        'data-testid="promote-prod"'
        not in client.get("/deploys/services/checkout", headers=eve).text
    )
