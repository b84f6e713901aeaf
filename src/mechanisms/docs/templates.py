"""Document templates: the sections a kind of document must have, found by heading.

A template is a list of sections; each names the headings that count for it (aliases),
whether it is required, and optional checks on its text. The default, ``decision``,
is the decision doc this project asks for: why now, the components affected and how,
the alternatives and why each was discarded, the customer impact, and the decision with
whether it is a one-way or a two-way door.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field

from mechanisms.core.errors import InvalidInput
from mechanisms.docs.markdown import Heading
from mechanisms.docs.prose import Prose


class ConfigError(InvalidInput):
    """The checker's configuration is wrong (a usage error: exit 2, HTTP 422)."""

    code = "invalid_config"


# Checks a section may ask for, by name.
_REASON = re.compile(
    r"\b(?:because|since|as it|discard\w*|reject\w*|dropp\w*|ruled out|too|cannot|can't|"
    r"could not|couldn't|would|will not|won't|does not|doesn't|did not|lacks?|requires?|"
    r"costs?|instead|but|however|only|no|not)\b",
    re.IGNORECASE,
)
_DOOR = re.compile(r"\b(?:one|two|1|2)[\s-]+way[\s-]+doors?\b", re.IGNORECASE)
SECTION_CHECKS = {
    "reasons": "each alternative says why it was discarded",
    "door": "says whether the decision is a one-way or a two-way door",
}


@dataclass(frozen=True)
class SectionSpec:
    id: str
    title: str
    aliases: tuple[str, ...]
    required: bool = True
    checks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.aliases:
            raise ConfigError(f"section {self.id!r} has no heading aliases")
        unknown = sorted(set(self.checks) - set(SECTION_CHECKS))
        if unknown:
            raise ConfigError(
                f"section {self.id!r}: unknown check {unknown[0]!r}; "
                f"known checks: {', '.join(SECTION_CHECKS)}"
            )


@dataclass(frozen=True)
class Template:
    name: str
    sections: tuple[SectionSpec, ...]

    def __post_init__(self) -> None:
        if not self.sections:
            raise ConfigError(
                f"template {self.name!r} has no sections; list at least one, "
                'or use template = "none" to skip the structure check'
            )


DECISION = Template(
    "decision",
    (
        SectionSpec(
            "why-now",
            "Why now",
            ("why now", "why this now", "motivation", "context", "background", "problem"),
        ),
        SectionSpec(
            "components",
            "Components affected and how",
            (
                "components affected",
                "components",
                "what changes",
                "what it changes",
                "changes",
                "design",
                "proposal",
            ),
        ),
        SectionSpec(
            "alternatives",
            "Alternatives considered",
            ("alternatives considered", "alternatives", "options considered", "options"),
            checks=("reasons",),
        ),
        SectionSpec(
            "customer-impact",
            "Customer impact",
            ("customer impact", "impact on customers", "impact on users", "user impact", "impact"),
        ),
        SectionSpec(
            "decision",
            "Decision",
            ("decision", "the decision", "outcome", "recommendation"),
            checks=("door",),
        ),
    ),
)
BUILTIN = {"decision": DECISION}


@dataclass
class SectionResult:
    id: str
    title: str
    required: bool
    present: bool
    heading: str | None = None
    line: int | None = None
    words: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.present and self.words > 0 and not self.problems) or (
            not self.required and not self.present
        )


@dataclass(frozen=True)
class StructureHit:
    """A structure problem at a place in the file (offsets into the source)."""

    rule: str
    start: int
    end: int
    text: str
    detail: str


_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*[.)]?|[a-z][.)])\s+")
_NOT_WORD = re.compile(r"[^\w\s-]")


def normalise(heading: str) -> str:
    text = _NOT_WORD.sub(" ", heading.lower().replace("’", "'"))
    return " ".join(_NUMBERING.sub("", " ".join(text.split())).replace("-", " ").split())


def _match_rank(heading: str, alias: str) -> int | None:
    """0 exact, 1 the heading starts with the alias, 2 contains it; None no match."""
    alias = normalise(alias)
    if heading == alias:
        return 0
    if heading.startswith(alias + " "):
        return 1
    if f" {alias} " in f" {heading} ":
        return 2
    return None


def _candidates(headings: list[Heading]) -> list[Heading]:
    """Headings that may name a section: a lone first-level title is the doc's name."""
    if headings and headings[0].level == 1 and sum(h.level == 1 for h in headings) == 1:
        return headings[1:]
    return headings


def _assign(template: Template, headings: list[Heading]) -> dict[str, Heading]:
    """Each section's heading: best rank first, then document order; a heading names
    one section at most."""
    options = []
    for order, spec in enumerate(template.sections):
        for position, heading in enumerate(headings):
            ranks = [_match_rank(normalise(heading.text), a) for a in spec.aliases]
            found = [r for r in ranks if r is not None]
            if found:
                options.append((min(found), position, order, spec.id, heading))
    taken: set[int] = set()
    chosen: dict[str, Heading] = {}
    for _rank, position, _order, section_id, heading in sorted(options):
        if section_id in chosen or position in taken:
            continue
        chosen[section_id] = heading
        taken.add(position)
    return chosen


def _body_end(headings: list[Heading], heading: Heading, source_end: int) -> int:
    for other in headings:
        if other.start > heading.start and other.level <= heading.level:
            return other.start
    return source_end


def check(prose: Prose, template: Template) -> tuple[list[SectionResult], list[StructureHit]]:
    doc = prose.doc
    headings = _candidates(doc.headings)
    chosen = _assign(template, headings)
    results: list[SectionResult] = []
    hits: list[StructureHit] = []
    for spec in template.sections:
        heading = chosen.get(spec.id)
        result = SectionResult(spec.id, spec.title, spec.required, heading is not None)
        results.append(result)
        if heading is None:
            if spec.required:
                result.problems.append("missing")
                hits.append(StructureHit("missing-section", 0, 0, "", spec.title))
            continue
        result.heading, result.line = heading.text, heading.line
        end = _body_end(doc.headings, heading, len(doc.source))
        sentences = prose.sentences[
            bisect_left(prose.sentence_starts, heading.end) : bisect_left(
                prose.sentence_starts, end
            )
        ]
        result.words = sum(s.words for s in sentences)
        if result.words == 0:
            result.problems.append("empty")
            hits.append(
                StructureHit("empty-section", heading.start, heading.end, heading.text, spec.title)
            )
            continue
        body = doc.masked[heading.end : end]
        if "door" in spec.checks and not _DOOR.search(body):
            result.problems.append(SECTION_CHECKS["door"])
            hits.append(
                StructureHit(
                    "door-not-stated", heading.start, heading.end, heading.text, spec.title
                )
            )
        if "reasons" in spec.checks:
            for start, stop in _alternatives(prose, doc.headings, heading, end):
                if not _REASON.search(doc.masked, start, stop):
                    text = " ".join(doc.masked[start:stop].split())
                    result.problems.append(f"no reason given for: {text[:60]}")
                    hits.append(
                        StructureHit("alternative-without-reason", start, stop, text, spec.title)
                    )
    return results, hits


def _alternatives(
    prose: Prose, headings: list[Heading], heading: Heading, end: int
) -> list[tuple[int, int]]:
    """The stretches that each describe one alternative: the section's sub-sections when
    it has them, else each paragraph or list item with its nested sub-items (which give
    its details and reasons). A paragraph ending in ':' introduces the alternatives and is
    not one."""
    subs = [h for h in headings if heading.end <= h.start < end and h.level > heading.level]
    if subs:
        bounds = [h.start for h in subs] + [end]
        return [(subs[i].end, bounds[i + 1]) for i in range(len(subs))]
    doc = prose.doc
    stretches: list[tuple[int, int]] = []
    item_depth = 0  # list depth of the item the last stretch started at (0: a paragraph)
    for block in doc.blocks:
        if not heading.end <= block.start < end:
            continue
        if stretches and 0 < item_depth < block.list_depth:
            stretches[-1] = (stretches[-1][0], block.end)
            continue
        if block.list_depth == 0 and doc.masked[block.start : block.end].rstrip().endswith(":"):
            continue
        stretches.append((block.start, block.end))
        item_depth = block.list_depth
    return stretches
