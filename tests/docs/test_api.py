"""`POST /api/v1/docs/check`: the report as JSON or SARIF, for any signed-in caller;
bad input is a 4xx in the standard error shape."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.docs.test_structure import GOOD

API = "/api/v1/docs"
SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text())


def test_check_answers_the_report(client, org) -> None:
    answer = client.post(f"{API}/check", json={"text": GOOD}, headers=org.header("eve"))
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["passed"] is True
    assert report["template"] == "decision"
    assert report["stats"]["words"] > 50
    assert {s["id"] for s in report["sections"] if s["ok"]} >= {"why-now", "decision"}


def test_a_viewer_may_check_and_nothing_is_stored(client, org) -> None:
    text = "# T\n\nIt is very good and was written.\n"
    answer = client.post(
        f"{API}/check", json={"text": text, "template": "none"}, headers=org.header("vic")
    )
    assert answer.status_code == 200
    findings = answer.json()["findings"]
    assert {(f["rule"], f["line"], f["column"]) for f in findings} >= {
        ("weasel", 3, 7),
        ("passive", 3, 21),
    }


def test_anonymous_callers_are_refused(client, org) -> None:
    answer = client.post(f"{API}/check", json={"text": GOOD})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "not_authenticated"


def test_sarif(client, org) -> None:
    answer = client.post(
        f"{API}/check/sarif",
        json={"text": "It is very good.\n", "template": "none", "name": "docs/x.md"},
        headers=org.header("eve"),
    )
    assert answer.status_code == 200
    jsonschema.validate(answer.json(), SCHEMA)
    (result,) = answer.json()["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "docs/x.md"


def test_configuration_in_the_body(client, org) -> None:
    config = 'template = "none"\ndisable = ["weasel"]\n[words]\nhedge = ["we reckon"]\n'
    answer = client.post(
        f"{API}/check",
        json={"text": "It is very good, we reckon.", "config": config},
        headers=org.header("eve"),
    )
    assert [f["rule"] for f in answer.json()["findings"]] == ["hedge"]


def _refused(client, org, body, status=422):  # noqa: ANN001, ANN202
    answer = client.post(f"{API}/check", json=body, headers=org.header("eve"))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def test_bad_input_is_a_clear_4xx(client, org) -> None:
    assert "empty" in _refused(client, org, {"text": "   \n"})["message"]
    _refused(client, org, {"text": ""})
    _refused(client, org, {"text": "a\x00b"})
    _refused(client, org, {"text": "x", "colour": "red"})
    _refused(client, org, {"text": 5})
    assert "pasive" in _refused(client, org, {"text": "x", "disable": ["pasive"]})["message"]
    assert "unknown template" in _refused(client, org, {"text": "x", "template": "rfc"})["message"]
    assert "not valid TOML" in _refused(client, org, {"text": "x", "config": "a = "})["message"]
    error = _refused(
        client, org, {"text": "x", "config": '[templates.t]\nsections = []\ntemplate = "t"'}
    )
    assert "unknown key" in error["message"]
    error = _refused(
        client, org, {"text": "x", "config": 'template = "t"\n[templates.t]\nsections = []'}
    )
    assert "has no sections" in error["message"]


def test_the_body_limit_holds(client, org) -> None:
    # The test app allows 64,000-byte bodies.
    answer = client.post(f"{API}/check", json={"text": "word " * 20_000}, headers=org.header("eve"))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"
