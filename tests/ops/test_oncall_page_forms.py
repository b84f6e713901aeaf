"""The schedule page's forms on both databases: an override added in the schedule's zone
or in UTC puts that person on call then, one removed no longer does, two upcoming shifts
swapped exchange their people; a form shown with an older version of the schedule
changes nothing and says why; viewers get no forms and a 403."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mechanisms.ops import oncall, schedules

BERLIN = ZoneInfo("Europe/Berlin")
PAGE = "/ops/oncall/schedules/payments-primary"
LAYER = {
    "participants": ["eve", "leo"],
    "rotation": {"type": "daily", "handoff_time": "09:00"},
    "start": "2026-01-01T09:00:00Z",
}


@pytest.fixture
def schedule(run, org):
    return run(schedules.create_schedule, "payments", "payments-primary", "Europe/Berlin", [LAYER])


def current(run) -> tuple[oncall.Schedule, int]:
    row = run(schedules.get_schedule, "payments-primary")
    return schedules.model(row), row.version


def post(client, org, path, who="eve", **data):
    return client.post(PAGE + path, data=data, headers=org.header(who), follow_redirects=False)


def test_an_override_added_in_the_schedules_zone_or_utc_and_removed(
    client, org, run, clock, schedule
):
    day = (clock.now() + timedelta(days=2)).astimezone(BERLIN).date()
    made = post(
        client,
        org,
        "/overrides",
        version="1",
        user="ada",
        zone="schedule",
        start=f"{day}T20:00",
        end=f"{day}T23:30",
    )
    assert made.status_code == 303 and made.headers["location"] == PAGE
    model, version = current(run)
    (override,) = model.overrides
    assert override.start == datetime.combine(day, datetime.min.time(), BERLIN).replace(
        hour=20
    ).astimezone(UTC)
    assert override.end - override.start == timedelta(hours=3, minutes=30)
    assert oncall.who_is_on_call(model, override.start + timedelta(hours=1)).person == "ada"

    made = post(
        client,
        org,
        "/overrides",
        version=str(version),
        user="vic",
        zone="UTC",
        start=f"{day}T02:00",
        end=f"{day}T03:00",
        replaces="eve",
    )
    assert made.status_code == 303
    model, version = current(run)
    second = next(o for o in model.overrides if o.user == "vic")
    assert second.start == datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    assert second.replaces == "eve"

    page = client.get(PAGE, headers=org.header("eve")).text
    assert f'data-override="{override.id}"' in page and 'data-testid="add-override"' in page
    gone = post(client, org, f"/overrides/{override.id}/remove", version=str(version))
    assert gone.status_code == 303
    model, _ = current(run)
    assert [o.user for o in model.overrides] == ["vic"]
    assert oncall.who_is_on_call(model, override.start + timedelta(hours=1)).person != "ada"


def test_two_upcoming_shifts_are_swapped_from_the_list(client, org, run, clock, schedule):
    page = client.get(PAGE, headers=org.header("eve")).text
    starts = re.findall(r'<option value="([^"]+\+00:00)">(\w+):', page)
    assert len(starts) >= 4
    (first, first_person), (second, second_person) = starts[1], starts[2]
    assert first_person != second_person
    swapped = post(client, org, "/swap", version="1", first=first, second=second)
    assert swapped.status_code == 303, swapped.text
    model, version = current(run)
    assert version == 2 and len(model.overrides) == 2
    at_first = datetime.fromisoformat(first) + timedelta(hours=1)
    at_second = datetime.fromisoformat(second) + timedelta(hours=1)
    assert oncall.who_is_on_call(model, at_first).person == second_person
    assert oncall.who_is_on_call(model, at_second).person == first_person


def test_a_stale_form_changes_nothing_and_says_why(client, org, run, clock, schedule):
    day = (clock.now() + timedelta(days=1)).date()
    fields = {"user": "ada", "zone": "UTC", "start": f"{day}T10:00", "end": f"{day}T11:00"}
    assert post(client, org, "/overrides", version="1", **fields).status_code == 303
    stale = post(client, org, "/overrides", version="1", **fields)
    assert stale.status_code == 409
    assert "changed the schedule" in stale.text and "Reload the page" in stale.text
    model, version = current(run)
    assert version == 2 and len(model.overrides) == 1
    swap = post(client, org, "/swap", version="1", first="x", second="y")
    assert swap.status_code == 422  # the shift is checked before the version
    removed = post(client, org, f"/overrides/{model.overrides[0].id}/remove", version="1")
    assert removed.status_code == 409
    assert len(current(run)[0].overrides) == 1


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"end": "2030-01-01T09:00"}, "end", 422),
        ({"start": "soon"}, "start", 422),
        ({"start": "2030-01-01T10:00+02:00"}, "start", 422),
        ({"user": "nobody"}, "user", 422),
        ({"user": " "}, "user", 422),
        ({"zone": "Mars"}, "zone", 422),
        ({"replaces": "nobody"}, "replaces", 422),
        ({"version": "0"}, "version", 422),
    ],
)
def test_bad_override_input_names_the_field(client, org, run, schedule, change, field, status):
    form = {
        "version": "1",
        "user": "ada",
        "zone": "UTC",
        "start": "2030-01-01T10:00",
        "end": "2030-01-01T12:00",
        **change,
    }
    answer = post(client, org, "/overrides", **form)
    assert answer.status_code == status, answer.text[:300]
    assert field in answer.text
    assert current(run)[0].overrides == ()


def test_viewers_see_no_forms_and_are_refused(client, org, run, schedule):
    page = client.get(PAGE, headers=org.header("vic")).text
    assert 'data-testid="add-override"' not in page and 'data-testid="swap"' not in page
    refused = post(
        client,
        org,
        "/overrides",
        who="vic",
        version="1",
        user="vic",
        zone="UTC",
        start="2030-01-01T10:00",
        end="2030-01-01T12:00",
    )
    assert refused.status_code == 403
    assert current(run) == (current(run)[0], 1)


def test_a_roster_change_from_a_future_date(client, org, run, clock, schedule):
    day = (clock.now() + timedelta(days=5)).astimezone(BERLIN).date()
    changed = post(
        client,
        org,
        "/roster",
        version="1",
        layer="0",
        zone="schedule",
        effective_at=f"{day}T09:00",
        participants="ada, vic",
    )
    assert changed.status_code == 303, changed.text[:300]
    model, version = current(run)
    assert version == 2
    (change,) = model.layers[0].roster_changes
    assert change.participants == ("ada", "vic")
    later = datetime(day.year, day.month, day.day, 12, tzinfo=BERLIN) + timedelta(days=3)
    assert oncall.who_is_on_call(model, later).person in {"ada", "vic"}
    assert "from " in client.get(PAGE, headers=org.header("vic")).text
    past = post(
        client,
        org,
        "/roster",
        version="2",
        layer="0",
        zone="UTC",
        effective_at="2020-01-01T09:00",
        participants="ada",
    )
    assert past.status_code == 422 and "effective_at" in past.text
    for change, field in [({"layer": "3"}, "layer"), ({"participants": " "}, "participants")]:
        form = {
            "version": "2",
            "layer": "0",
            "zone": "UTC",
            "effective_at": "2030-01-01T09:00",
            "participants": "ada",
            **change,
        }
        answer = post(client, org, "/roster", **form)
        assert answer.status_code == 422 and field in answer.text, answer.text[:300]
    stale = post(
        client,
        org,
        "/roster",
        version="1",
        layer="0",
        zone="UTC",
        effective_at="2030-01-01T09:00",
        participants="ada",
    )
    assert stale.status_code == 409 and "Reload the page" in stale.text
    assert current(run)[1] == 2
