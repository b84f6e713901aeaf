"""The silences page on both databases: a silence made from the form holds the alarm it
covers ("silenced until ..." on the alarms list and the alarm's page), recurring ones show
their next window, bad input is a 4xx naming the field, only engineers see the forms, and
a deleted silence lets the alarm notify again."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from mechanisms.ops import alarms, silences

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def two_alarms(run, org):
    run(alarms.create_service, "checkout", "Checkout", "payments")
    for name in ("checkout-slow", "checkout-errors"):
        run(
            alarms.create_alarm,
            name,
            "checkout",
            rule=None,
            metric="api_latency_ms",
            match={"service": "checkout"},
            definition={
                "statistic": "p99",
                "comparison": "GreaterThanThreshold",
                "threshold": 300,
                "period_seconds": 60,
                "evaluation_periods": 1,
                "datapoints_to_alarm": 1,
            },
        )


def wall(at) -> str:
    return at.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M")


def test_a_silence_made_on_the_page_holds_its_alarm_until_its_end(client, org, clock, two_alarms):
    now = clock.now()
    end = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    made = client.post(
        "/ops/silences",
        data={
            "name": "release night",
            "start": wall(now - timedelta(hours=1)),
            "end": wall(end),
            "time_zone": "Europe/Berlin",
            "alarm": ["checkout-slow"],
            "comment": "the migration",
        },
        headers=org.header("eve"),
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    until = f"silenced until {end:%Y-%m-%d %H:%M} UTC"
    page = client.get("/ops/silences", headers=org.header("vic")).text
    assert 'data-silence="release night" data-active="yes"' in page
    assert f"until {end:%Y-%m-%d %H:%M}" in page and "the migration" in page
    listed = client.get("/ops/alarms", headers=org.header("vic")).text
    assert listed.count("silenced until") == 1 and until in listed
    assert until in client.get("/ops/alarms/checkout-slow", headers=org.header("vic")).text
    assert (
        "silenced until"
        not in client.get("/ops/alarms/checkout-errors", headers=org.header("vic")).text
    )

    gone = client.post(
        "/ops/silences/release night/delete", headers=org.header("eve"), follow_redirects=False
    )
    assert gone.status_code == 303
    assert "silenced until" not in client.get("/ops/alarms", headers=org.header("vic")).text
    assert (
        'data-testid="no-silences"' in client.get("/ops/silences", headers=org.header("eve")).text
    )


def test_a_recurring_silence_shows_its_next_window(client, org, clock, run, two_alarms):
    now = clock.now()
    start = (
        (now + timedelta(days=1))
        .astimezone(BERLIN)
        .replace(hour=22, minute=0, second=0, microsecond=0, tzinfo=None)
    )
    schedule = silences.Schedule(
        start, start + timedelta(hours=3), "Europe/Berlin", "FREQ=DAILY", ("checkout-errors",)
    )
    run(silences.create, "nightly batch", schedule)
    clock.advance(days=3, hours=1)
    expected = silences.next_window(run(silences.get, "nightly batch"), clock.now())
    assert expected is not None and expected[0] > clock.now()
    assert expected[0] - clock.now() <= timedelta(days=1)
    page = client.get("/ops/silences", headers=org.header("vic")).text
    assert 'data-silence="nightly batch" data-active="no"' in page
    assert f"next {expected[0]:%Y-%m-%d %H:%M} – {expected[1]:%Y-%m-%d %H:%M}" in page
    assert "FREQ=DAILY" in page


def test_only_engineers_see_the_forms_and_bad_input_names_the_field(client, org, clock, two_alarms):
    assert (
        'data-testid="new-silence"'
        not in client.get("/ops/silences", headers=org.header("vic")).text
    )
    assert (
        'data-testid="new-silence"' in client.get("/ops/silences", headers=org.header("eve")).text
    )
    now = clock.now()
    form = {
        "name": "x",
        "start": wall(now),
        "end": wall(now + timedelta(hours=1)),
        "time_zone": "Europe/Berlin",
        "alarm": ["checkout-slow"],
    }
    assert client.post("/ops/silences", data=form, headers=org.header("vic")).status_code == 403
    for change, field in [
        ({"end": wall(now - timedelta(hours=1))}, "end"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
        ({"start": "tomorrow"}, "start"),
        ({"alarm": ["no-such-alarm"]}, "alarms"),
        ({"name": " "}, "name"),
    ]:
        answer = client.post("/ops/silences", data={**form, **change}, headers=org.header("eve"))
        assert answer.status_code == 422, (change, answer.status_code)
        assert field in answer.text, (change, answer.text[:300])
    assert (
        'data-testid="no-silences"' in client.get("/ops/silences", headers=org.header("eve")).text
    )
    missing = client.post("/ops/silences/nothing/delete", headers=org.header("eve"))
    assert missing.status_code == 404
