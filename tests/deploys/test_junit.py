"""JUnit XML from real tools (pytest, Maven Surefire, jest-junit), and hostile or broken XML."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mechanisms.core.errors import InvalidInput
from mechanisms.deploys import junit

SAMPLES = Path(__file__).parent / "samples"


def test_pytest_junitxml_output():
    report = junit.parse((SAMPLES / "pytest.xml").read_bytes())
    assert (report.tests, report.failures, report.errors, report.skipped) == (6, 1, 1, 1)
    assert not report.passed
    assert [s.name for s in report.suites] == ["checkout-integration"]
    assert report.suites[0].time == pytest.approx(0.104)
    failure, error = report.problems
    assert (failure.kind, failure.name) == ("failure", "test_fails")
    assert "cart total is wrong" in failure.message
    assert (error.kind, error.name, error.classname) == ("error", "test_errors", "test_sample")
    assert "database is down" in error.message


def test_maven_surefire_report():
    report = junit.parse((SAMPLES / "surefire.xml").read_text())
    assert (report.tests, report.failures, report.errors, report.skipped) == (4, 1, 0, 1)
    assert report.suites[0].name == "com.acme.payments.CheckoutServiceIT"
    (problem,) = report.problems
    assert problem.name == "refundsTwice"
    assert problem.message.startswith("expected: <200> but was: <409>")
    assert "CheckoutServiceIT.java:88" in problem.message


def test_jest_junit_report():
    report = junit.parse((SAMPLES / "jest.xml").read_bytes())
    assert (report.tests, report.failures, report.errors, report.skipped) == (5, 1, 0, 1)
    assert [(s.name, s.tests, s.failures) for s in report.suites] == [
        ("cart totals", 2, 0),
        ("checkout flow", 3, 1),
    ]
    assert "Something went wrong" in report.problems[0].message
    assert report.time == pytest.approx(1.022 + 2.165)


def test_a_clean_run_passes_and_zero_tests_or_only_skipped_does_not():
    clean = junit.parse('<testsuite name="s"><testcase name="a"/><testcase name="b"/></testsuite>')
    assert clean.passed and clean.tests == 2
    assert not junit.parse("<testsuites/>").passed
    assert not junit.parse('<testsuite name="s" tests="0"/>').passed
    assert not junit.parse(
        '<testsuite name="s"><testcase name="a"><skipped/></testcase></testsuite>'
    ).passed


def test_counts_come_from_the_cases_not_the_attributes():
    lying = '<testsuite name="s" tests="100" failures="0"><testcase name="a"><failure message="no"/></testcase></testsuite>'
    report = junit.parse(lying)
    assert (report.tests, report.failures) == (1, 1)
    assert not report.passed


def test_nested_suites_are_counted_once():
    nested = """<testsuites><testsuite name="outer"><testcase name="a"/>
      <testsuite name="inner"><testcase name="b"><error message="boom"/></testcase></testsuite>
    </testsuite></testsuites>"""
    report = junit.parse(nested)
    assert (report.tests, report.errors) == (2, 1)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuite name="&lol9;"><testcase name="a"/></testsuite>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="s"><testcase name="&secret;"/></testsuite>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE])
def test_entity_attacks_are_refused_quickly(document):
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as info:
        junit.parse(document)
    assert info.value.code == "unsafe_xml"
    # A generous bound: expanding the entities would take minutes and gigabytes, so this
    # still proves the refusal comes before any expansion on however slow a machine.
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (b"", "malformed_junit"),
        (b"   ", "malformed_junit"),
        (b"<testsuite><testcase name='a'>", "malformed_junit"),
        (b"not xml at all", "malformed_junit"),
        (b"<html><body>502 Bad Gateway</body></html>", "malformed_junit"),
        (b"\xff\xfe<\x00t\x00", "malformed_junit"),
        (
            b"<testsuite name='s'>"
            + b"<testcase name='a'/>" * 10
            + b"</testsuite>"
            + b" " * junit.MAX_BYTES,
            "junit_too_large",
        ),
    ],
)
def test_broken_documents_are_refused_with_a_reason(document, code):
    with pytest.raises(InvalidInput) as info:
        junit.parse(document)
    assert info.value.code == code
    assert info.value.details == {"field": "junit"}


def test_odd_but_valid_values_do_not_crash():
    report = junit.parse(
        '<testsuite name="s" time="1,5x"><testcase name="a" time="NaN"/></testsuite>'
    )
    assert report.tests == 1 and report.suites[0].time == 0.0
    body = report.to_dict()
    assert body["passed"] is True and body["suites"][0]["name"] == "s"


SAMPLE_TEXTS = [(SAMPLES / name).read_text() for name in ("pytest.xml", "surefire.xml", "jest.xml")]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLE_TEXTS), st.floats(0, 1), st.integers(0, 40), st.text(max_size=20))
def test_damaged_reports_give_counts_or_a_refusal_never_a_crash(sample, where, length, insert):
    start = int(where * len(sample))
    document = sample[:start] + insert + sample[start + length :]
    try:
        report = junit.parse(document)
    except InvalidInput as refused:
        assert refused.code in {"malformed_junit", "unsafe_xml"}
        event("refused")
        return
    event("parsed")
    assert report.tests >= report.failures + report.errors + report.skipped >= 0
