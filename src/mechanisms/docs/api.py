"""HTTP API of the docs mechanism (`/api/v1/docs/…`).

`POST /api/v1/docs/check` checks Markdown sent in the body and answers the report;
`POST /api/v1/docs/check/sarif` answers SARIF 2.1.0. Both only read: any signed-in
caller, a viewer included, may check a document; nothing is stored.
"""

from __future__ import annotations

import tomllib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mechanisms import __version__
from mechanisms.core.context import Ctx
from mechanisms.core.errors import NotAuthenticated
from mechanisms.docs import config as doc_config
from mechanisms.docs.areas import join_routers
from mechanisms.docs.check import Report, check_document
from mechanisms.docs.sarif import to_sarif
from mechanisms.docs.source import MAX_BYTES, check_text
from mechanisms.web.http import Input, Text, UnitOfWorkRoute, request_ctx

router = APIRouter(prefix="/api/v1/docs", route_class=UnitOfWorkRoute, tags=["docs"])
CtxDep = Annotated[Ctx, Depends(request_ctx)]
# A POST by necessity (the document travels in the body) that changes nothing.
READ_ONLY = {"x-mech-read-only": True}
RuleName = Annotated[Text, Field(min_length=1, max_length=64)]


class CheckIn(Input):
    text: Annotated[Text, Field(min_length=1, max_length=MAX_BYTES)] = Field(
        description="The Markdown document."
    )
    template: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="decision (the default), none, or a template the config defines.",
    )
    disable: list[RuleName] = Field(default_factory=list, max_length=50)
    config: Annotated[Text, Field(max_length=100_000)] | None = Field(
        default=None, description="A configuration in .mechdoc.toml's format."
    )
    name: Annotated[Text, Field(min_length=1, max_length=500)] = Field(
        default="document.md", description="The file's name, shown in SARIF output."
    )


class StatsOut(BaseModel):
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
    words_per_page: int
    target_pages: tuple[float, float]
    length: Literal["short", "on target", "long"]


class FindingOut(BaseModel):
    rule: str
    kind: str
    severity: Literal["error", "warning", "suggestion"]
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int
    text: str
    message: str
    suggestion: str


class SectionOut(BaseModel):
    id: str
    title: str
    required: bool
    present: bool
    heading: str | None
    line: int | None
    words: int
    problems: list[str]
    ok: bool


class FailureOut(BaseModel):
    check: str
    message: str
    actual: float | None
    limit: float | None


class ReportOut(BaseModel):
    passed: bool
    template: str | None
    stats: StatsOut
    findings: list[FindingOut]
    counts: dict[str, int]
    sections: list[SectionOut]
    failures: list[FailureOut]
    notes: list[str]


def _run(ctx: Ctx, body: CheckIn) -> Report:
    if not ctx.principal.is_authenticated:
        raise NotAuthenticated("send an API token to check documents")
    cfg = doc_config.CheckConfig()
    if body.config is not None:
        try:
            data = tomllib.loads(body.config)
        except tomllib.TOMLDecodeError as exc:
            raise doc_config.ConfigError(f"config: not valid TOML ({exc})") from None
        cfg = doc_config.from_dict(data, "config")
    if body.template is not None:
        cfg = cfg.with_template(body.template)
    if body.disable:
        cfg = cfg.with_disabled(list(body.disable))
    return check_document(check_text(body.text, "text"), cfg)


@router.post("/check", response_model=ReportOut, openapi_extra=READ_ONLY)
def check(body: CheckIn, ctx: CtxDep) -> dict[str, Any]:
    """Check a Markdown document: statistics, findings, sections and thresholds."""
    return _run(ctx, body).to_dict()


@router.post("/check/sarif", openapi_extra=READ_ONLY)
def check_sarif(body: CheckIn, ctx: CtxDep) -> dict[str, Any]:
    """The same check, answered as a SARIF 2.1.0 log."""
    return to_sarif([(body.name, _run(ctx, body))], __version__)


join_routers(router, "mechanisms.docs.api_registry")
