"""JUnit XML test results: totals, per-suite counts and failure messages.

The XML is parsed by ``defusedxml`` (DTDs, entity declarations and external references are
refused, so a billion-laughs or XXE document is an error, not a hang or a file read) and read
through ``junitparser``'s model of the format. Counts come from the test cases themselves, not
from the suites' ``tests=``/``failures=`` attributes, which tools fill in inconsistently.
Malformed input raises ``InvalidInput`` naming the reason; it never crashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as safe_xml
from junitparser import Error, Failure, JUnitXml, JUnitXmlError, Skipped

from mechanisms.core.errors import InvalidInput

MAX_BYTES = 20 * 1024 * 1024
MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True)
class Problem:
    """One failed or erroring test case."""

    suite: str
    classname: str
    name: str
    kind: str  # "failure" or "error"
    message: str


@dataclass(frozen=True)
class SuiteSummary:
    name: str
    tests: int
    failures: int
    errors: int
    skipped: int
    time: float


@dataclass(frozen=True)
class Report:
    tests: int
    failures: int
    errors: int
    skipped: int
    time: float
    suites: tuple[SuiteSummary, ...]
    problems: tuple[Problem, ...]  # the first MAX_MESSAGES, in document order

    @property
    def passed(self) -> bool:
        """True when tests ran and none failed or erred (skipped ones do not count as run)."""
        return self.tests - self.skipped > 0 and not self.failures and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "tests": self.tests,
            "failures": self.failures,
            "errors": self.errors,
            "skipped": self.skipped,
            "time": self.time,
            "passed": self.passed,
            "suites": [s.__dict__ for s in self.suites],
            "problems": [p.__dict__ for p in self.problems],
        }


def _refuse(message: str, code: str = "malformed_junit") -> InvalidInput:
    return InvalidInput(message, code=code, details={"field": "junit"})


def _seconds(value: Any) -> float:
    try:
        seconds = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return seconds if seconds == seconds and seconds >= 0 else 0.0  # NaN and negatives: unknown


def _message(result: Any) -> str:
    parts = [result.message or "", (result.text or "").strip()]
    text = "\n".join(p for p in parts if p)
    return text[:MAX_MESSAGE_CHARS]


def parse(data: bytes | str) -> Report:
    """The results in a JUnit XML document (``<testsuites>`` or a single ``<testsuite>``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_BYTES:
        raise _refuse(
            f"the JUnit XML is larger than {MAX_BYTES // (1024 * 1024)} MiB", "junit_too_large"
        )
    if not data.strip():
        raise _refuse("the JUnit XML is empty")
    try:
        root = safe_xml.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise _refuse(
            f"the JUnit XML declares a DTD or entities, which are refused: {exc}", "unsafe_xml"
        ) from exc
    except ParseError as exc:
        raise _refuse(f"the JUnit XML is not well-formed: {exc}") from exc
    try:
        document = JUnitXml.fromroot(root)
    except JUnitXmlError as exc:
        raise _refuse(
            f"not JUnit XML: the root element is <{root.tag}>, not <testsuites> or <testsuite>"
        ) from exc
    suites = []
    problems: list[Problem] = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    # A suite's cases include those of suites nested in it (Ant, some Jest setups).
    for suite in document:
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in suite:
            counts["tests"] += 1
            results = case.result
            if any(isinstance(r, Error) for r in results):
                kind = "error"
            elif any(isinstance(r, Failure) for r in results):
                kind = "failure"
            elif any(isinstance(r, Skipped) for r in results):
                counts["skipped"] += 1
                continue
            else:
                continue
            counts["errors" if kind == "error" else "failures"] += 1
            if len(problems) < MAX_MESSAGES:
                first = next(
                    r for r in results if isinstance(r, Error if kind == "error" else Failure)
                )
                problems.append(
                    Problem(
                        suite.name or "",
                        case.classname or "",
                        case.name or "",
                        kind,
                        _message(first),
                    )
                )
        suites.append(
            SuiteSummary(suite.name or "", time=_seconds(suite._elem.get("time")), **counts)
        )
        for key, value in counts.items():
            totals[key] += value
    return Report(
        time=sum(s.time for s in suites),
        suites=tuple(suites),
        problems=tuple(problems),
        **totals,
    )
