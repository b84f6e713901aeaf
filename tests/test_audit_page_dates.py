"""The audit page's date filters at the ends of the calendar: offsets that put a date
before year 1 or after year 9999 in UTC filter as the earliest or latest instant would
(everything, or nothing), never a 500, on both databases."""

from __future__ import annotations

import pytest

from mechanisms.core import accounts

EVERYTHING, NOTHING = "everything", "nothing"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("since", "0001-01-01T00:00:00+14:00", EVERYTHING),
        ("since", "0001-01-01T00:00:00-14:00", EVERYTHING),
        ("since", "0001-01-01", EVERYTHING),
        ("since", "9999-12-31T23:59:59-14:00", NOTHING),
        ("since", "9999-12-31T23:59:59.999999-23:59", NOTHING),
        ("until", "9999-12-31T23:59:59-14:00", EVERYTHING),
        ("until", "9999-12-31T23:59:59+14:00", EVERYTHING),
        ("until", "9999-12-31", EVERYTHING),
        ("until", "0001-01-01T00:00:00+14:00", NOTHING),
        ("until", "0001-01-01T00:00:00+23:59", NOTHING),
    ],
)
def test_extreme_dates_filter_the_trail_without_an_error(client, org, run, field, value, expected):
    run(accounts.create_team, "growth", "Growth", parent="acme")
    page = client.get("/audit", params={field: value}, headers=org.header("ada"))
    assert page.status_code == 200, page.text[:300]
    shown = "team.created" in page.text and "growth" in page.text
    assert shown == (expected == EVERYTHING)
    assert f'value="{value}"' in page.text, "the form keeps what was typed"


def test_dates_the_calendar_cannot_hold_are_a_4xx(client, org):
    for value in ("10000-01-01", "0000-12-31", "2026-02-30", "2026-01-01T00:00:00+24:00"):
        page = client.get("/audit", params={"since": value}, headers=org.header("ada"))
        assert page.status_code == 422 and "since" in page.text, value
