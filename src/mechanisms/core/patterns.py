"""Regular expressions that users write (flag ``matches`` clauses, and any other), compiled by
RE2 so that matching takes time linear in the text whatever the pattern.

Python's ``re`` backtracks: ``(a+)+$`` against forty ``a`` and a ``!`` takes seconds, and
each further character doubles it. RE2 has no backtracking (so no back-references and no
look-around); a pattern it cannot compile is refused when the rule is saved, never tried
with ``re``. Pure: the SDK imports this module too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

import re2

# Patterns longer than this are refused: a rule is a person's pattern, not a data file.
MAX_PATTERN_LENGTH = 1_000
# Attribute values are names, emails, versions, user agents: 64 K characters is plenty.
MAX_MATCHED_TEXT = 65_536
# RE2's memory budget for one compiled pattern (its default is 8 MiB); a pattern whose
# program does not fit, such as a{1000}{1000}-style blow-ups, is refused when compiled.
_MAX_PROGRAM_BYTES = 1 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _MAX_PROGRAM_BYTES
    options.log_errors = False
    return options


_OPTIONS = _options()


class PatternError(ValueError):
    """A pattern that is too long, or that RE2 cannot compile."""


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled pattern, or PatternError naming it and why."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"{pattern[:40]!r}… is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(f"{pattern!r} is not a valid regular expression: {reason}") from None
    except UnicodeEncodeError:
        raise PatternError(f"{pattern!r} is not valid Unicode (a lone surrogate)") from None


def any_matches(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of whether any of ``patterns`` matches anywhere in a text (``re.search``).
    A text longer than MAX_MATCHED_TEXT matches none: linear time is still time, and the
    single-flag OFREP path evaluates on the event loop."""
    compiled = [compile_pattern(p) for p in patterns]

    def matches(text: str) -> bool:
        if len(text) > MAX_MATCHED_TEXT:
            return False
        try:
            return any(c.search(text) is not None for c in compiled)
        except UnicodeEncodeError:  # text with a lone surrogate: no pattern can match it
            return False

    return matches
