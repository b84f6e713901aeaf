"""The bounds every RFC 5545 recurrence in the system obeys (block windows, silences), and
expansion bounded by the window asked about.

dateutil expands a rule from its DTSTART: asking whether a silence with ``FREQ=SECONDLY``
that started a year ago covers now walks thirty million seconds, and a worker doing that
holds its transaction (on SQLite, the write lock) all the while. So a rule recurs at most
``MAX_OCCURRENCES_PER_YEAR`` times a year (no SECONDLY or MINUTELY), counts at most
``MAX_COUNT`` occurrences, and is expanded from the period just before the window asked
about, whatever its DTSTART.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, time, timedelta

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rrule, weekday

# A daily rule is 365 a year; anything recurring more often than this is a mistake (or an
# attempt to make the server expand millions of occurrences).
MAX_OCCURRENCES_PER_YEAR = 1000
MAX_COUNT = MAX_OCCURRENCES_PER_YEAR
# Each occurrence lasts at most this long: a longer one is a window without end, which a
# one-off window says better (and every look-up would walk back over its length).
MAX_DURATION = timedelta(days=366)
FINE_FREQUENCIES = re.compile(r"(?:^|;)\s*FREQ\s*=\s*(SECONDLY|MINUTELY)\s*(?:;|$)", re.IGNORECASE)


def fine_frequency(body: str) -> str | None:
    """``SECONDLY`` or ``MINUTELY`` when the rule recurs that often (refused), else None."""
    found = FINE_FREQUENCIES.search(body)
    return found.group(1).upper() if found else None


def too_dense(parsed: rrule, dtstart: datetime) -> bool:
    """Whether the rule recurs more than MAX_OCCURRENCES_PER_YEAR times in its first year."""
    if parsed._count is not None and parsed._count <= MAX_OCCURRENCES_PER_YEAR:
        return False
    year_end = dtstart + timedelta(days=366)
    until = parsed._until
    first_year = parsed.replace(count=None, until=min(until, year_end) if until else year_end)
    return (
        len(list(itertools.islice(first_year, MAX_OCCURRENCES_PER_YEAR + 1)))
        > MAX_OCCURRENCES_PER_YEAR
    )


def _explicit_parts(rule: rrule) -> dict[str, object]:
    """The BY parts dateutil took from DTSTART when the rule left them out (a weekly rule's
    weekday, a monthly rule's day, the time of day), made explicit, so that moving DTSTART
    does not move them."""
    parts: dict[str, object] = {}
    if rule._bymonth:
        parts["bymonth"] = tuple(rule._bymonth)
    days = (*(rule._bymonthday or ()), *(rule._bynmonthday or ()))
    if days:
        parts["bymonthday"] = days
    weekdays = [weekday(d) for d in rule._byweekday or ()]
    weekdays += [weekday(d, n) for d, n in rule._bynweekday or ()]
    if weekdays:
        parts["byweekday"] = weekdays
    for name in ("byhour", "byminute", "bysecond"):
        value = getattr(rule, f"_{name}")
        if value is not None:
            parts[name] = tuple(sorted(value))
    return parts


def _period_start(rule: rrule, at: datetime) -> datetime | None:
    """The start of the latest period of the rule (a whole number of INTERVALs after its
    DTSTART's period) that begins at or before ``at``."""
    start, step, freq = rule._dtstart, rule._interval, rule._freq
    if freq == YEARLY:
        k = (at.year - start.year) // step * step
        return start.replace(year=start.year + k, month=1, day=1, hour=0, minute=0, second=0)
    if freq == MONTHLY:
        months = (at.year - start.year) * 12 + at.month - start.month
        total = start.month - 1 + months // step * step
        return start.replace(
            year=start.year + total // 12, month=total % 12 + 1, day=1, hour=0, minute=0, second=0
        )
    if freq in (WEEKLY, DAILY):
        length = 7 if freq == WEEKLY else 1
        back = (start.weekday() - rule._wkst) % 7 if freq == WEEKLY else 0
        first = datetime.combine(start.date() - timedelta(days=back), time(), start.tzinfo)
        periods = (at.replace(tzinfo=None) - first.replace(tzinfo=None)).days // length
        return first + timedelta(days=periods // step * step * length)
    if freq == HOURLY:
        first = start.replace(minute=0, second=0, microsecond=0)
        hours = (at.replace(tzinfo=None) - first.replace(tzinfo=None)) // timedelta(hours=1)
        return first + timedelta(hours=hours // step * step)
    return None  # finer rules are refused before they get here


def starting_near(rule: rrule, at: datetime) -> rrule:
    """A rule with the same occurrences as ``rule`` from ``at`` on, whose DTSTART is at most
    one INTERVAL before ``at``: expanding it costs the same however old the rule is. A
    rule with COUNT counts from its own DTSTART and is kept (COUNT is at most MAX_COUNT)."""
    if rule._count is not None or at <= rule._dtstart:
        return rule
    moved = _period_start(rule, at)
    if moved is None or moved <= rule._dtstart:
        return rule
    return rule.replace(dtstart=moved, **_explicit_parts(rule))


def between(rule: rrule, start: datetime, end: datetime) -> list[datetime]:
    """The occurrences in [start, end], expanded from just before ``start``."""
    return starting_near(rule, start).between(start, end, inc=True)
