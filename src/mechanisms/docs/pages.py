"""The docs web UI: the editor, where a document is checked as it is typed.

`/docs/editor` shows a text area beside a preview that marks each finding in the text
(colour by kind, with a legend) and the statistics; htmx posts the text half a second
after typing stops and swaps in the server-rendered result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from mechanisms.docs import config as doc_config
from mechanisms.docs import rules
from mechanisms.docs.areas import join_routers
from mechanisms.docs.check import STRUCTURE_KIND, check_document
from mechanisms.docs.highlight import highlight
from mechanisms.docs.source import MAX_BYTES
from mechanisms.web import pages as web
from mechanisms.web.http import UnitOfWorkRoute
from mechanisms.web.pages import FormCtx, PageCtx

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
web.register_templates("docs", TEMPLATES_DIR)

TEMPLATE_CHOICES = ("decision", "none")
LEGEND = [(rule.id, rule.title) for rule in rules.PROSE_RULES.values()] + [
    (STRUCTURE_KIND, "Sections and length")
]
SAMPLE = """# Cache the flag definitions at the edge

## Why now

Flag reads are slowed by a round trip to the region. There are many teams that
really need faster reads, and I think the edge cache is significantly better.

## Decision

We cache definitions at the edge for 30 seconds. This is a two-way door.
"""


def _result(text: str, template: str) -> dict[str, Any]:
    if not text.strip():
        return {"report": None}
    cfg = doc_config.CheckConfig().with_template(
        template if template in TEMPLATE_CHOICES else "decision"
    )
    report = check_document(text, cfg)
    return {
        "report": report,
        "preview": highlight(text, report.findings),
        "counts": report.counts_by_kind(),
        "legend": LEGEND,
    }


@router.get("/docs/editor")
def editor_page(request: Request, ctx: PageCtx) -> Response:
    return web.render(
        request,
        "docs/editor.html",
        section="docs",
        text=SAMPLE,
        chosen="decision",
        choices=TEMPLATE_CHOICES,
        max_bytes=MAX_BYTES,
        **_result(SAMPLE, "decision"),
    )


@router.post("/docs/editor/check")
def editor_check(
    request: Request,
    ctx: FormCtx,
    text: Annotated[str, Form(max_length=MAX_BYTES)] = "",
    template: Annotated[str, Form(max_length=32)] = "decision",
) -> Response:
    # NUL would never reach a database here, but the page refuses what the API refuses.
    text = text.replace("\x00", "")
    return web.render(request, "docs/editor_result.html", **_result(text, template))


join_routers(router, "mechanisms.docs.pages_registry")
