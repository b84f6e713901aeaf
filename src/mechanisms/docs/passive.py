"""Passive-voice detection in English prose.

``find_passive(text)`` returns one span per passive construction, from the form of
"be" (or "get") to the past participle, in plain prose (Markdown already removed).
"""

from __future__ import annotations

import re

from mechanisms.docs.spans import Span

_BE = r"(?:am|is|are|was|were|be|being|been|'s|'re)"
_IRREGULAR = (
    "awoken|been|born|beat|become|begun|bent|beset|bet|bid|bidden|bound|bitten|bled|blown|"
    "broken|bred|brought|broadcast|built|burnt|burst|bought|cast|caught|chosen|clung|come|"
    "cost|crept|cut|dealt|dug|dived|done|drawn|dreamt|driven|drunk|eaten|fallen|fed|felt|"
    "fought|found|fit|fled|flung|flown|forbidden|forgotten|foregone|forgiven|forsaken|"
    "frozen|gotten|given|gone|ground|grown|hung|heard|hidden|hit|held|hurt|kept|knelt|knit|"
    "known|laid|led|lent|let|lain|lit|lost|made|meant|met|misspelt|mistaken|mown|overcome|"
    "overdone|overtaken|overthrown|paid|pled|proven|put|quit|read|rid|ridden|rung|risen|run|"
    "sawn|said|seen|sought|sold|sent|set|sewn|shaken|shaven|shorn|shed|shone|shod|shot|"
    "shown|shrunk|shut|sung|sunk|sat|slept|slain|slid|slung|slit|smitten|sown|spoken|sped|"
    "spent|spilt|spun|spit|split|spread|sprung|stood|stolen|stuck|stung|stunk|stridden|"
    "struck|strung|striven|sworn|swept|swollen|swum|swung|taken|taught|torn|told|thought|"
    "thrived|thrown|thrust|trodden|understood|upheld|upset|woken|worn|woven|wed|wept|wound|"
    "won|withheld|withstood|wrung|written"
)
_PASSIVE = re.compile(
    rf"\b{_BE}\s+(?:\w+ly\s+)*(?:\w+ed|{_IRREGULAR})\b",
    re.IGNORECASE,
)


def find_passive(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), m.group(0)) for m in _PASSIVE.finditer(text)]
