"""On-call over HTTP: schedules in, who is on call, overrides and swaps, coverage across
follow-the-sun schedules, fairness, secret iCalendar feeds, policies and pages."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
import pytest

from mechanisms.core.worker import Worker

API = "/api/v1/ops/oncall"


def daily(participants, *, start="2026-01-01T09:00:00Z", restrictions=None, handoff="09:00"):
    return {
        "participants": participants,
        "rotation": {"type": "daily", "handoff_time": handoff},
        "start": start,
        "restrictions": restrictions or [],
    }


def schedule(name, layers, time_zone="UTC", team="payments"):
    return {"name": name, "team": team, "time_zone": time_zone, "layers": layers}


@pytest.fixture
def admin(org):
    return org.header("ada")


@pytest.fixture
def primary(client, admin):
    answer = client.post(
        f"{API}/schedules", json=schedule("primary", [daily(["eve", "leo"])]), headers=admin
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_schedule_says_who_is_on_call_now_and_next(client, admin, primary, clock):
    assert primary["on_call_now"] == "eve" and primary["version"] == 1
    now = client.get(f"{API}/now", params={"team": "payments"}, headers=admin).json()
    assert now == [
        {
            "schedule": "primary",
            "team_id": primary["team_id"],
            "person": "eve",
            "source": "layer:0",
            "until": "2026-01-06T09:00:00Z",
        }
    ]
    shifts = client.get(
        f"{API}/schedules/primary/shifts",
        params={"start": "2026-01-05T09:00:00Z", "end": "2026-01-07T09:00:00Z"},
        headers=admin,
    ).json()
    assert [(s["person"], s["start"]) for s in shifts] == [
        ("eve", "2026-01-05T09:00:00Z"),
        ("leo", "2026-01-06T09:00:00Z"),
    ]
    mine = client.get(f"{API}/people/leo/shifts", headers=admin).json()
    assert mine[0]["start"] == "2026-01-06T09:00:00Z" and mine[0]["schedule"] == "primary"


def test_bad_schedules_are_refused_naming_the_field(client, admin):
    unknown_zone = client.post(
        f"{API}/schedules",
        json=schedule("x", [daily(["eve"])], time_zone="Mars/Olympus"),
        headers=admin,
    )
    assert unknown_zone.status_code == 422
    assert unknown_zone.json()["error"]["details"]["field"] == "time_zone"
    nobody = client.post(f"{API}/schedules", json=schedule("x", [daily(["zed"])]), headers=admin)
    assert nobody.status_code == 422
    assert nobody.json()["error"]["details"]["field"] == "layers.0.participants"
    weekly_without_day = client.post(
        f"{API}/schedules",
        json=schedule("x", [{**daily(["eve"]), "rotation": {"type": "weekly"}}]),
        headers=admin,
    )
    assert weekly_without_day.status_code == 422
    assert "handoff_weekday" in weekly_without_day.json()["error"]["message"]
    assert client.get(f"{API}/schedules", headers=admin).json() == []


def test_overrides_swaps_and_versions(client, admin, primary):
    override = client.post(
        f"{API}/schedules/primary/overrides",
        json={"start": "2026-01-05T12:00:00Z", "end": "2026-01-05T14:00:00Z", "user": "ada"},
        headers=admin,
    )
    assert override.status_code == 201, override.text
    assert override.json()["schedule"]["version"] == 2
    stale = client.post(
        f"{API}/schedules/primary/swaps",
        json={
            "first_at": "2026-01-06T10:00:00Z",
            "second_at": "2026-01-07T10:00:00Z",
            "version": 1,
        },
        headers=admin,
    )
    assert stale.status_code == 409
    swapped = client.post(
        f"{API}/schedules/primary/swaps",
        json={
            "first_at": "2026-01-06T10:00:00Z",
            "second_at": "2026-01-07T10:00:00Z",
            "version": 2,
        },
        headers=admin,
    )
    assert swapped.status_code == 201, swapped.text
    shifts = client.get(
        f"{API}/schedules/primary/shifts",
        params={"start": "2026-01-05T09:00:00Z", "end": "2026-01-08T09:00:00Z"},
        headers=admin,
    ).json()
    assert [(s["person"], s["start"][:16]) for s in shifts] == [
        ("eve", "2026-01-05T09:00"),
        ("ada", "2026-01-05T12:00"),
        ("eve", "2026-01-05T14:00"),
        ("eve", "2026-01-06T09:00"),  # leo's day, swapped
        ("leo", "2026-01-07T09:00"),  # eve's day, swapped
    ]
    removed = client.delete(
        f"{API}/schedules/primary/overrides/{override.json()['override_ids'][0]}", headers=admin
    )
    assert removed.status_code == 200 and len(removed.json()["overrides"]) == 2
    past = client.post(
        f"{API}/schedules/primary/roster-changes",
        json={"layer": 0, "effective_at": "2026-01-01T00:00:00Z", "participants": ["ada"]},
        headers=admin,
    )
    assert past.status_code == 422 and past.json()["error"]["details"]["field"] == "effective_at"


def test_coverage_of_follow_the_sun_schedules_across_dst(client, admin):
    office = [{"kind": "daily", "start": "08:00", "end": "20:00"}]
    for name, zone, who in (("emea", "Europe/Berlin", "eve"), ("amer", "America/New_York", "leo")):
        created = client.post(
            f"{API}/schedules",
            json=schedule(name, [daily([who], restrictions=office)], time_zone=zone),
            headers=admin,
        )
        assert created.status_code == 201, created.text

    def gaps(start, end):
        answer = client.get(
            f"{API}/coverage",
            params={"schedule": ["emea", "amer"], "start": start, "end": end},
            headers=admin,
        )
        assert answer.status_code == 200, answer.text
        return [(g["start"], g["end"]) for g in answer.json()["gaps"]]

    # Winter: Berlin 07–19 UTC, New York 13–01 UTC; nobody from 01:00 to 07:00 UTC.
    assert gaps("2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z") == [
        ("2026-01-06T01:00:00Z", "2026-01-06T07:00:00Z")
    ]
    # Between the US (8 March) and EU (29 March) changes: New York ends at 00:00 UTC.
    assert gaps("2026-03-16T00:00:00Z", "2026-03-17T00:00:00Z") == [
        ("2026-03-16T00:00:00Z", "2026-03-16T07:00:00Z")
    ]
    too_long = client.get(
        f"{API}/coverage",
        params={"schedule": "emea", "start": "2026-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z"},
        headers=admin,
    )
    assert too_long.status_code == 422


def test_fairness_counts_hours_nights_and_weekends(client, admin, primary):
    loads = client.get(
        f"{API}/schedules/primary/fairness",
        params={"start": "2026-01-05T09:00:00Z", "end": "2026-01-12T09:00:00Z"},
        headers=admin,
    ).json()
    by_person = {load["person"]: load for load in loads}
    assert by_person["eve"]["hours"] + by_person["leo"]["hours"] == 7 * 24
    assert by_person["eve"]["shifts"] == 4 and by_person["leo"]["shifts"] == 3
    assert by_person["eve"]["night_hours"] == 4 * 8
    # Weekend Sat 10 00:00 → Mon 12 00:00: eve until Sat 09:00 and from Sun 09:00, leo between.
    assert by_person["leo"]["weekend_hours"] == 24
    assert by_person["eve"]["weekend_hours"] == 9 + 15


def test_a_secret_feed_serves_a_calendar_and_rotates(client, admin, primary, org):
    created = client.post(f"{API}/schedules/primary/feed", headers=admin)
    assert created.status_code == 201
    url = created.json()["url"]
    assert "/feeds/mcal_" in url and url.endswith(".ics")
    feed = client.get(url)  # no credentials: calendar apps send none
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(feed.content)
    events = calendar.walk("VEVENT")
    assert events and {str(e["X-MECHANISMS-PERSON"]) for e in events} == {"eve", "leo"}
    first = min(events, key=lambda e: e.decoded("dtstart"))
    assert first.decoded("dtstart") <= datetime(2026, 1, 5, 9, tzinfo=UTC)

    rotated = client.post(f"{API}/schedules/primary/feed", headers=admin).json()["url"]
    assert client.get(url).status_code == 404
    assert client.get(rotated).status_code == 200
    assert client.get(f"{API}/feeds/mcal_nothing.ics").status_code == 404

    mine = client.post(f"{API}/people/eve/feed", headers=org.header("eve"))
    assert mine.status_code == 201
    person = icalendar.Calendar.from_ical(client.get(mine.json()["url"]).content)
    assert {str(e["X-MECHANISMS-PERSON"]) for e in person.walk("VEVENT")} == {"eve"}
    assert client.post(f"{API}/people/leo/feed", headers=org.header("eve")).status_code == 403


def test_policies_pages_and_acknowledgement_over_http(client, admin, primary, org, db, clock):
    policy = {
        "name": "payments-default",
        "team": "payments",
        "levels": [
            {"targets": [{"kind": "schedule", "name": "primary"}], "timeout_minutes": 5},
            {"targets": [{"kind": "user", "name": "leo"}], "timeout_minutes": 5},
        ],
        "default": True,
    }
    assert client.post(f"{API}/policies", json=policy, headers=admin).status_code == 201
    bad = client.post(
        f"{API}/policies",
        json={**policy, "name": "other", "levels": [{"targets": [], "timeout_minutes": 5}]},
        headers=admin,
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "levels.0.targets"
    assert (
        client.post(
            "/api/v1/ops/services",
            json={"key": "checkout", "owner_team": "payments"},
            headers=admin,
        ).status_code
        == 201
    )
    ticket = client.post(
        "/api/v1/ops/tickets",
        json={"service": "checkout", "title": "checkout down", "severity": 1},
        headers=admin,
    ).json()
    worker = Worker(db, clock=clock)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    pages = client.get(f"{API}/pages", params={"state": "triggered"}, headers=admin).json()
    assert [p["ticket_id"] for p in pages] == [ticket["id"]]
    page_id = pages[0]["id"]
    detail = client.get(f"{API}/pages/{page_id}", headers=admin).json()
    assert [(n["level"], n["person"]) for n in detail["notifications"]] == [(0, "eve")]
    assert (
        client.post(f"{API}/pages/{page_id}/acknowledge", headers=org.header("vic")).status_code
        == 403
    )
    acked = client.post(f"{API}/pages/{page_id}/acknowledge", headers=org.header("eve"))
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    again = client.post(f"{API}/pages/{page_id}/acknowledge", headers=org.header("eve"))
    assert again.status_code == 409
    ticket_now = client.get(f"/api/v1/ops/tickets/{ticket['id']}", headers=admin).json()
    assert ticket_now["state"] == "acknowledged" and ticket_now["assignee"] == "eve"
    in_use = client.delete(f"{API}/schedules/primary", headers=admin)
    assert in_use.status_code == 409


def test_viewers_read_but_cannot_change(client, org, primary):
    viewer = org.header("vic")
    assert client.get(f"{API}/schedules/primary", headers=viewer).status_code == 200
    refused = client.post(
        f"{API}/schedules/primary/overrides",
        json={"start": "2026-01-05T12:00:00Z", "end": "2026-01-05T14:00:00Z", "user": "vic"},
        headers=viewer,
    )
    assert refused.status_code == 403
