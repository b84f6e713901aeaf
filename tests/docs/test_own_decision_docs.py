"""The project's own decision docs pass `mech doc check`, as we ask of our users' docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mechanisms.docs import config as doc_config
from mechanisms.docs.check import check_document

DECISIONS = Path(__file__).resolve().parents[2] / "docs" / "decisions"


def _config() -> doc_config.CheckConfig:
    found = doc_config.find_config(DECISIONS)
    return doc_config.load(found) if found else doc_config.CheckConfig()


@pytest.mark.parametrize("path", sorted(DECISIONS.glob("*.md")), ids=lambda p: p.name)
def test_our_decision_doc_passes_the_check(path: Path) -> None:
    report = check_document(path.read_text(encoding="utf-8"), _config())
    assert report.passed, [f.message for f in report.failures]
