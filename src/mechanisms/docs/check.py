"""Check one Markdown document: statistics, prose findings, template sections, length,
and the thresholds a project set. ``check_document`` is what the CLI, the API, the
editor page and the review registry all call.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any

from mechanisms.docs import markdown, prose, readability, rules, templates
from mechanisms.docs.config import CheckConfig, Thresholds
from mechanisms.docs.templates import ConfigError, SectionResult

__all__ = [
    "CheckConfig",
    "ConfigError",
    "Failure",
    "Finding",
    "Report",
    "SectionResult",
    "Stats",
    "Thresholds",
    "check_document",
]

# Kinds of structure findings: they share one colour and one count.
STRUCTURE_KIND = "structure"


@dataclass(frozen=True)
class Stats:
    words: int
    sentences: int
    paragraphs: int
    syllables: int
    letters: int
    words_per_sentence: float
    syllables_per_word: float
    sentences_per_paragraph: float
    passive_sentences: int
    passive_percent: float
    difficult_words: int
    complex_words: int
    flesch_reading_ease: float
    flesch_kincaid_grade: float
    gunning_fog: float
    smog: float
    coleman_liau: float
    automated_readability_index: float
    dale_chall: float
    reading_minutes: float
    pages: float
    words_per_page: int = readability.WORDS_PER_PAGE
    target_pages: tuple[float, float] = (2.0, 3.0)

    @property
    def length(self) -> str:
        low, high = self.target_pages
        return "short" if self.pages < low else "long" if self.pages > high else "on target"


@dataclass(frozen=True)
class Finding:
    rule: str
    kind: str
    severity: str  # error | warning | suggestion
    line: int  # 1-based
    column: int  # 1-based, in code points
    end_line: int
    end_column: int  # 1-based, just past the match
    start: int  # character offsets into the document
    end: int
    text: str
    message: str
    suggestion: str


@dataclass(frozen=True)
class Failure:
    check: str
    message: str
    actual: float | int | None = None
    limit: float | int | None = None


@dataclass
class Report:
    stats: Stats
    findings: list[Finding]
    sections: list[SectionResult]
    failures: list[Failure]
    template: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def counts_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        stats = asdict(self.stats) | {"length": self.stats.length}
        return {
            "passed": self.passed,
            "template": self.template,
            "stats": stats,
            "findings": [asdict(f) for f in self.findings],
            "counts": self.counts_by_kind(),
            "sections": [asdict(s) | {"ok": s.ok} for s in self.sections],
            "failures": [asdict(f) for f in self.failures],
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


# --- the check ----------------------------------------------------------------------


def check_document(text: str, config: CheckConfig | None = None) -> Report:
    config = config or CheckConfig()
    doc = markdown.parse(text)
    analysed = prose.analyse(doc)
    settings = config.rule_settings()
    hits = rules.run(analysed, _with_passive(settings))
    passive_hits = [h for h in hits if h.rule == "passive"]
    stats = _stats(analysed, passive_hits)
    suppressed = _Suppression(doc.directives)
    findings = [
        _finding(doc, h.rule, h.start, h.end, h.text, _message(h, analysed, config))
        for h in _without_shadowed(hits, settings.enabled)
        if h.rule in settings.enabled and not suppressed(h.rule, doc.line_of(h.start))
    ]
    sections: list[SectionResult] = []
    structure: list[Finding] = []
    if config.template is not None:
        sections, structure_hits = templates.check(analysed, config.template)
        structure = [
            _finding(doc, h.rule, h.start, h.end, h.text, _structure_message(h))
            for h in structure_hits
            if h.rule not in config.disabled and not suppressed(h.rule, doc.line_of(h.start))
        ]
    structure += _length_findings(doc, stats, config)
    structure += _directive_findings(doc)
    findings = sorted(findings + structure, key=lambda f: (f.start, f.end, f.rule))
    notes = [] if stats.words else ["no prose found (only code, HTML, tables or front matter)"]
    return Report(
        stats=stats,
        findings=findings,
        sections=sections,
        failures=_failures(stats, findings, config.thresholds),
        template=config.template.name if config.template else None,
        notes=notes,
    )


def _without_shadowed(hits: list[rules.Hit], enabled: frozenset[str] | set[str]) -> list[rules.Hit]:
    """Drop a weasel word that sits inside an unquantified claim ("significantly faster"):
    both rules match it, and the more specific finding, give the number, is the one a
    writer can act on. With ``unquantified`` switched off the weasel word is reported."""
    if "unquantified" not in enabled:
        return hits
    claims = sorted((h.start, h.end) for h in hits if h.rule == "unquantified")
    starts = [start for start, _ in claims]

    def inside_claim(hit: rules.Hit) -> bool:
        i = bisect_right(starts, hit.start) - 1
        return i >= 0 and claims[i][1] >= hit.end

    return [h for h in hits if h.rule != "weasel" or not inside_claim(h)]


def _with_passive(settings: rules.Settings) -> rules.Settings:
    # Passive voice is always found: the statistics count passive sentences even when
    # a project does not want each one reported.
    return rules.Settings(
        enabled=settings.enabled | {"passive"},
        extra_words=settings.extra_words,
        accepted=settings.accepted,
        long_sentence_words=settings.long_sentence_words,
    )


def _stats(analysed: prose.Prose, passive_hits: list[rules.Hit]) -> Stats:
    c = analysed.counts
    starts = analysed.sentence_starts
    passive_sentences = len(
        {bisect_right(starts, h.start) - 1 for h in passive_hits if starts} - {-1}
    )
    scores = readability.scores(c)
    per = lambda a, b: round(a / b, 2) if b else 0.0  # noqa: E731
    return Stats(
        words=c.words,
        sentences=c.sentences,
        paragraphs=analysed.paragraphs,
        syllables=c.syllables,
        letters=c.letters,
        words_per_sentence=per(c.words, c.sentences),
        syllables_per_word=per(c.syllables, c.words),
        sentences_per_paragraph=per(c.sentences, analysed.paragraphs),
        passive_sentences=passive_sentences,
        passive_percent=round(100 * passive_sentences / c.sentences, 1) if c.sentences else 0.0,
        difficult_words=c.difficult_words,
        complex_words=c.complex_words,
        reading_minutes=round(readability.reading_minutes(c.words), 1),
        pages=round(readability.pages(c.words), 2),
        **scores,
    )


def _finding(
    doc: markdown.ParsedDoc, rule: str, start: int, end: int, text: str, message: str
) -> Finding:
    spec = rules.RULES[rule]
    line, column = doc.position(start)
    end_line, end_column = doc.position(end)
    kind = rule if rule in rules.PROSE_RULES else STRUCTURE_KIND
    return Finding(
        rule=rule,
        kind=kind,
        severity=spec.severity,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
        start=start,
        end=end,
        text=" ".join(text.split()),
        message=message,
        suggestion=spec.suggestion,
    )


def _message(hit: rules.Hit, analysed: prose.Prose, config: CheckConfig) -> str:
    spec = rules.RULES[hit.rule]
    if hit.rule == "long-sentence":
        i = bisect_right(analysed.sentence_starts, hit.start) - 1
        words = analysed.sentences[i].words
        return f"{words} words (limit {config.max_sentence_words}). {spec.why}"
    return spec.why


def _structure_message(hit: templates.StructureHit) -> str:
    spec = rules.RULES[hit.rule]
    return f"{spec.title}: {hit.detail}. {spec.why}"


def _length_findings(doc: markdown.ParsedDoc, stats: Stats, config: CheckConfig) -> list[Finding]:
    limit = config.thresholds.max_pages
    if limit is None or stats.pages <= limit or "too-long" in config.disabled:
        return []
    message = (
        f"About {stats.pages:.1f} pages ({stats.words} words at "
        f"{stats.words_per_page} words a page); the limit is {limit:g}. "
        f"{rules.RULES['too-long'].why}"
    )
    return [_finding(doc, "too-long", 0, 0, "", message)]


def _directive_findings(doc: markdown.ParsedDoc) -> list[Finding]:
    found = []
    for directive in doc.directives:
        unknown = [n for n in directive.names if n not in rules.RULES]
        if unknown:
            start = doc.line_starts[directive.line - 1] + directive.column - 1
            message = (
                f"Unknown rule {unknown[0]!r} in mech-doc-{directive.verb}. "
                f"{rules.RULES['directive'].why}"
            )
            found.append(_finding(doc, "directive", start, start, unknown[0], message))
    return found


class _Suppression:
    """Rules switched off by inline comments, line by line, as Vale and markdownlint do:
    ``disable [rules]`` until ``enable [rules]`` (or the end), ``disable-next-line``."""

    def __init__(self, directives: list[markdown.Directive]) -> None:
        self.ranges: list[tuple[int, int, frozenset[str] | None]] = []
        open_since: dict[str | None, int] = {}
        for d in directives:
            names = [n for n in d.names if n in rules.RULES]
            if d.names and not names:
                continue  # only unknown names: reported, switches nothing
            keys: list[str | None] = list(names) or [None]
            if d.verb == "disable-next-line":
                self.ranges.append((d.line + 1, d.line + 1, frozenset(names) or None))
            elif d.verb == "disable":
                for key in keys:
                    open_since.setdefault(key, d.line)
            else:
                closing = list(open_since) if not d.names else keys
                for key in closing:
                    if key in open_since:
                        self._close(key, open_since.pop(key), d.line)
        for key, since in open_since.items():
            self._close(key, since, 1 << 62)

    def _close(self, key: str | None, since: int, until: int) -> None:
        self.ranges.append((since, until, None if key is None else frozenset({key})))

    def __call__(self, rule: str, line: int) -> bool:
        return any(
            low <= line <= high and (names is None or rule in names)
            for low, high, names in self.ranges
        )


def _failures(stats: Stats, findings: list[Finding], limits: Thresholds) -> list[Failure]:
    failures = []
    if stats.words:
        if (
            limits.min_reading_ease is not None
            and stats.flesch_reading_ease < limits.min_reading_ease
        ):
            failures.append(
                Failure(
                    "min_reading_ease",
                    f"Flesch Reading Ease {stats.flesch_reading_ease:.1f} is below "
                    f"{limits.min_reading_ease:g}",
                    stats.flesch_reading_ease,
                    limits.min_reading_ease,
                )
            )
        if limits.max_grade is not None and stats.flesch_kincaid_grade > limits.max_grade:
            failures.append(
                Failure(
                    "max_grade",
                    f"Flesch–Kincaid grade {stats.flesch_kincaid_grade:.1f} is above "
                    f"{limits.max_grade:g}",
                    stats.flesch_kincaid_grade,
                    limits.max_grade,
                )
            )
        if (
            limits.max_passive_percent is not None
            and stats.passive_percent > limits.max_passive_percent
        ):
            failures.append(
                Failure(
                    "max_passive_percent",
                    f"{stats.passive_percent:.1f} % of sentences are passive; the limit is "
                    f"{limits.max_passive_percent:g} %",
                    stats.passive_percent,
                    limits.max_passive_percent,
                )
            )
    if limits.max_pages is not None and stats.pages > limits.max_pages:
        failures.append(
            Failure(
                "max_pages",
                f"about {stats.pages:.1f} pages; the limit is {limits.max_pages:g}",
                stats.pages,
                limits.max_pages,
            )
        )
    section_problems = [
        f for f in findings if f.kind == STRUCTURE_KIND and f.rule not in ("too-long", "directive")
    ]
    if limits.sections and section_problems:
        failures.append(
            Failure(
                "sections",
                "; ".join(f.message.split(". ")[0] for f in section_problems),
                len(section_problems),
                0,
            )
        )
    unknown = [f for f in findings if f.rule == "directive"]
    if unknown:
        failures.append(
            Failure("directives", "an inline comment names an unknown rule", len(unknown), 0)
        )
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
    for rule, limit in sorted(limits.max_findings.items()):
        if counts.get(rule, 0) > limit:
            failures.append(
                Failure(
                    f"max_findings.{rule}",
                    f"{counts[rule]} {rules.RULES[rule].title.lower()} findings; "
                    f"the limit is {limit}",
                    counts[rule],
                    limit,
                )
            )
    return failures
