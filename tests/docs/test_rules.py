"""Each prose rule on sentences a reviewer would flag, and on ones they would not."""

from __future__ import annotations

import pytest

from mechanisms.docs.check import CheckConfig, check_document
from mechanisms.docs.config import from_dict

NO_TEMPLATE = CheckConfig(template=None)


def _rules(text: str, config: CheckConfig = NO_TEMPLATE) -> list[tuple[str, str]]:
    return [(f.rule, f.text) for f in check_document(text, config).findings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The deploy was blocked by the gate.", ("passive", "was blocked")),
        ("It is a very good plan.", ("weasel", "very")),
        ("I think we should ship.", ("hedge", "I think")),
        ("Perhaps we ship on Monday.", ("hedge", "Perhaps")),
        ("We might ship on Monday.", ("hedge", "might")),
        ("We basically ship on Monday.", ("adverb", "basically")),
        ("There are three teams that use it.", ("there-is", "There are")),
        ("This is the low-hanging fruit.", ("cliche", "low-hanging fruit")),
        ("At the end of the day we ship.", ("cliche", "At the end of the day")),
        ("The new store is much faster.", ("unquantified", "much faster")),
        (
            "The new store is significantly more reliable.",
            ("unquantified", "significantly more reliable"),
        ),
        ("Latency is greatly reduced.", ("unquantified", "greatly reduced")),
    ],
)
def test_rule_finds(text: str, expected: tuple[str, str]) -> None:
    assert expected in _rules(text)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("The gate blocks the deploy.", "passive"),
        ("The new store is much faster: p99 fell from 180 ms to 40 ms.", "unquantified"),
        ("We have much power here.", "unquantified"),
        ("Thereafter we ship.", "there-is"),
        ("The ocean is large.", "cliche"),
        ("We ship justly.", "adverb"),
        ("Mighty teams ship.", "hedge"),
    ],
)
def test_rule_stays_quiet(text: str, rule: str) -> None:
    assert rule not in {r for r, _ in _rules(text)}


def test_long_sentence_counts_words() -> None:
    long = "We ship " + "and ship " * 20 + "today."
    (finding,) = [
        f for f in check_document(long, NO_TEMPLATE).findings if f.rule == "long-sentence"
    ]
    assert finding.message.startswith("43 words (limit 30)")
    short = from_dict({"template": "none", "max_sentence_words": 50})
    assert "long-sentence" not in {r for r, _ in _rules(long, short)}


def test_every_finding_says_why_and_what_to_do() -> None:
    text = "There are many teams. I think it was done very quickly, basically."
    findings = check_document(text, NO_TEMPLATE).findings
    assert {f.rule for f in findings} >= {"there-is", "weasel", "hedge", "passive", "adverb"}
    for f in findings:
        assert f.message and f.suggestion and f.severity in ("error", "warning", "suggestion")
        assert f.kind == f.rule


def test_a_project_adds_words_and_accepts_terms() -> None:
    config = from_dict(
        {
            "template": "none",
            "words": {"weasel": ["synergy"], "hedge": ["we reckon"], "accept": ["very"]},
        }
    )
    found = _rules("The synergy is very clear and we reckon it works.", config)
    assert ("weasel", "synergy") in found
    assert ("hedge", "we reckon") in found
    assert ("weasel", "very") not in found


def test_disabled_rules_report_nothing_but_passive_still_counts() -> None:
    config = from_dict({"template": "none", "disable": ["passive", "weasel"]})
    report = check_document("The deploy was blocked. It is very good.", config)
    assert not report.findings
    assert report.stats.passive_sentences == 1


def test_a_match_never_joins_two_paragraphs() -> None:
    assert not _rules("We found it was\n\nwritten by them.")
    assert not _rules("- one thing was\n- written down")


def test_a_weasel_word_inside_an_unquantified_claim_is_reported_once():
    text = "# T\n\nThe cache is significantly faster than many others.\n"
    found = [(f.rule, f.text) for f in check_document(text).findings]
    assert ("unquantified", "significantly faster") in found
    assert ("weasel", "significantly") not in found
    assert ("weasel", "many") in found
    claims_off = CheckConfig().with_disabled(["unquantified"])
    found = [(f.rule, f.text) for f in check_document(text, claims_off).findings]
    assert ("weasel", "significantly") in found


def test_a_quoted_hedge_is_a_mention_not_a_hedge():
    text = '# T\n\nWe dropped the word "perhaps" from the list. Perhaps we ship it.\n'
    hedges = [f.text for f in check_document(text).findings if f.rule == "hedge"]
    assert hedges == ["Perhaps"]
