"""Templates, configuration files and inline comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from mechanisms.docs import config as doc_config
from mechanisms.docs.check import CheckConfig, ConfigError, check_document

GOOD = """# 0007 Cache flag definitions at the edge

## Why now
Reads take 180 ms from far regions; customers time out.

## Components affected and how
The SDK reads from the edge cache; the API sets cache headers.

## Alternatives considered
- A read replica per region: discarded because it costs 4 times more.
- Longer SDK polling: rejected, since changes would take minutes to arrive.

## Customer impact
Reads drop to 20 ms at p99 in every region.

## Decision
We cache definitions for 30 seconds. This is a two-way door: we can turn it off.
"""


def test_a_complete_decision_doc_passes_its_sections() -> None:
    report = check_document(GOOD)
    assert [s.id for s in report.sections if s.ok] == [
        "why-now",
        "components",
        "alternatives",
        "customer-impact",
        "decision",
    ]
    assert not [f for f in report.findings if f.kind == "structure"]
    assert not [f for f in report.failures if f.check == "sections"]


def test_missing_and_empty_sections_fail() -> None:
    text = GOOD.replace("## Customer impact\nReads drop to 20 ms at p99 in every region.\n", "")
    text = text.replace("Reads take 180 ms from far regions; customers time out.\n", "")
    report = check_document(text)
    rules = {f.rule: f for f in report.findings if f.kind == "structure"}
    assert rules["missing-section"].line == 1
    assert rules["empty-section"].text == "Why now"
    (failure,) = [f for f in report.failures if f.check == "sections"]
    assert "Customer impact" in failure.message and "Why now" in failure.message


def test_an_alternative_without_a_reason_and_a_decision_without_a_door() -> None:
    text = GOOD.replace(
        "- Longer SDK polling: rejected, since changes would take minutes to arrive.",
        "- Longer SDK polling.",
    ).replace("This is a two-way door: we can turn it off.", "We start Monday.")
    report = check_document(text)
    rules = {(f.rule, f.text) for f in report.findings}
    assert ("alternative-without-reason", "Longer SDK polling.") in rules
    assert ("door-not-stated", "Decision") in rules


def test_headings_match_by_alias_and_numbering() -> None:
    text = GOOD.replace("## Why now", "## 1. Motivation").replace(
        "## Alternatives considered", "## Options"
    )
    report = check_document(text)
    assert all(s.ok for s in report.sections)


def test_a_template_with_no_sections_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="has no sections"):
        doc_config.from_dict({"template": "rfc", "templates": {"rfc": {"sections": []}}})


def test_a_custom_template() -> None:
    config = doc_config.from_dict(
        {
            "template": "rfc",
            "templates": {
                "rfc": {
                    "sections": [
                        {"id": "summary", "title": "Summary", "aliases": ["summary", "tl;dr"]},
                        {"id": "risks", "aliases": ["risks"], "required": False},
                    ]
                }
            },
        }
    )
    report = check_document("# RFC\n\n## TL;DR\nWe ship it.\n", config)
    assert [(s.id, s.ok) for s in report.sections] == [("summary", True), ("risks", True)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"disable": ["pasive"]}, "unknown rule 'pasive'"),
        ({"thresholds": {"max_findings": {"weasels": 1}}}, "unknown rule 'weasels'"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"thresholds": {"min_reading_ease": True}}, "expected a number"),
        ({"template": "rfc"}, "unknown template 'rfc'"),
        ({"words": {"passive": ["x"]}}, "unknown key 'passive'"),
        ({"max_sentence_words": 0}, "at least 1"),
        (
            {
                "templates": {
                    "x": {"sections": [{"id": "a", "aliases": ["a"], "checks": ["spell"]}]}
                }
            },
            "unknown check",
        ),
    ],
)
def test_configuration_errors_are_clear(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        doc_config.from_dict(data)


def test_the_nearest_configuration_wins(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.mechanisms.doc]\ntemplate = "none"\n')
    sub = tmp_path / "docs" / "decisions"
    sub.mkdir(parents=True)
    assert doc_config.find_config(sub) == tmp_path / "pyproject.toml"
    (tmp_path / "docs" / ".mechdoc.toml").write_text('disable = ["adverb"]\n')
    found = doc_config.find_config(sub)
    assert found == tmp_path / "docs" / ".mechdoc.toml"
    assert doc_config.load(found).disabled == {"adverb"}
    (tmp_path / "other").mkdir()
    assert doc_config.load(doc_config.find_config(tmp_path / "other")).template is None


def test_a_pyproject_without_the_table_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert doc_config.find_config(tmp_path) != tmp_path / "pyproject.toml"


def test_inline_comments_switch_rules_off() -> None:
    text = (
        "It is very good.\n\n"
        "<!-- mech-doc-disable weasel -->\n\n"
        "It is very good and was written.\n\n"
        "<!-- mech-doc-enable -->\n\n"
        "It is very good.\n\n"
        "<!-- mech-doc-disable-next-line -->\n"
        "It is very good and was written.\n\n"
        "<!-- mech-doc-disable -->\n\n"
        "It is very good.\n"
    )
    findings = check_document(text, CheckConfig(template=None)).findings
    assert [(f.line, f.rule) for f in findings] == [(1, "weasel"), (5, "passive"), (9, "weasel")]


def test_an_unknown_rule_in_a_comment_is_reported() -> None:
    report = check_document(
        "<!-- mech-doc-disable weasels -->\n\nIt is very good.\n", CheckConfig(template=None)
    )
    assert ("directive", "weasels") in {(f.rule, f.text) for f in report.findings}
    assert ("weasel", "very") in {(f.rule, f.text) for f in report.findings}
    assert any(f.check == "directives" for f in report.failures)


def test_a_comment_inside_a_code_block_switches_nothing() -> None:
    text = "```\n<!-- mech-doc-disable -->\n```\n\nIt is very good.\n"
    assert [f.rule for f in check_document(text, CheckConfig(template=None)).findings] == ["weasel"]


def test_thresholds_fail_the_check() -> None:
    config = doc_config.from_dict(
        {
            "template": "none",
            "thresholds": {
                "min_reading_ease": 90,
                "max_passive_percent": 10,
                "max_findings": {"weasel": 0},
                "max_grade": 1,
            },
        }
    )
    report = check_document("The plan was approved by the many members of the committee.", config)
    assert {f.check for f in report.failures} == {
        "min_reading_ease",
        "max_passive_percent",
        "max_findings.weasel",
        "max_grade",
    }
    assert not report.passed


def test_length_beyond_three_pages_fails() -> None:
    text = "We ship the cache on Monday. " * 320  # 1,920 words: 3.8 pages
    report = check_document(text, CheckConfig(template=None))
    assert report.stats.pages == pytest.approx(3.84)
    assert report.stats.length == "long"
    assert "too-long" in {f.rule for f in report.findings}
    assert "max_pages" in {f.check for f in report.failures}
    assert report.stats.reading_minutes == pytest.approx(1920 / (1700 / 15), abs=0.05)


def test_an_alternatives_sub_items_are_part_of_it_and_give_its_reason() -> None:
    doc = (
        "# T\n\n## Alternatives considered\n\nThree options:\n\n"
        "- A regex. Discarded:\n  - On our set it scores F1 0.73.\n  - It misses adverbs.\n"
        "- A model from the web, discarded because it needs a download.\n"
        "- Writing nothing at all.\n"
    )
    unreasoned = [
        f.text for f in check_document(doc).findings if f.rule == "alternative-without-reason"
    ]
    assert unreasoned == ["Writing nothing at all."]
