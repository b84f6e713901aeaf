"""SARIF 2.1.0 for the docs check, so code-scanning tools (GitHub's among them) show
findings on the lines they concern. Columns count Unicode code points, as the check
does, and the run says so (``columnKind``)."""

from __future__ import annotations

from typing import Any

from mechanisms.docs import rules
from mechanisms.docs.check import Report

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
LEVELS = {"error": "error", "warning": "warning", "suggestion": "note"}
# Threshold failures belong to a file, not to a line.
THRESHOLD_RULE = rules.Rule(
    "threshold",
    "Threshold failed",
    "error",
    "A limit the project set for its documents (readability, passive voice, length, "
    "sections, findings) is not met.",
    "Revise the document, or change the limit in the project's configuration.",
)


def _rule(rule: rules.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.id.split("-")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {"text": rule.suggestion},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
    }


def _message(text: str, why: str, suggestion: str) -> str:
    quoted = f"“{text[:120]}”: " if text else ""
    return f"{quoted}{why} {suggestion}"


def to_sarif(reports: list[tuple[str, Report]], version: str) -> dict[str, Any]:
    """One run over every checked file; ``reports`` pairs each file's URI (relative to
    the working folder, with forward slashes) with its report."""
    catalogue = [*rules.RULES.values(), THRESHOLD_RULE]
    index = {rule.id: i for i, rule in enumerate(catalogue)}
    results = []
    for uri, report in reports:
        location = {"artifactLocation": {"uri": uri}}
        for f in report.findings:
            results.append(
                {
                    "ruleId": f.rule,
                    "ruleIndex": index[f.rule],
                    "level": LEVELS[f.severity],
                    "message": {"text": _message(f.text, f.message, f.suggestion)},
                    "locations": [
                        {
                            "physicalLocation": {
                                **location,
                                "region": {
                                    "startLine": f.line,
                                    "startColumn": f.column,
                                    "endLine": f.end_line,
                                    "endColumn": f.end_column,
                                },
                            }
                        }
                    ],
                }
            )
        for failure in report.failures:
            results.append(
                {
                    "ruleId": THRESHOLD_RULE.id,
                    "ruleIndex": index[THRESHOLD_RULE.id],
                    "level": "error",
                    "message": {"text": f"{failure.check}: {failure.message}"},
                    "locations": [{"physicalLocation": location}],
                }
            )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mech doc",
                        "version": version,
                        "rules": [_rule(r) for r in catalogue],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "artifacts": [{"location": {"uri": uri}} for uri, _ in reports],
                "results": results,
            }
        ],
    }
