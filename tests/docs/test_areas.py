"""Area modules join the docs base router and app, whichever way they are written."""

from __future__ import annotations

import sys
import types

import typer
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from mechanisms.docs.areas import join_commands, join_routers


def test_an_area_with_its_own_router_and_app_is_included(monkeypatch) -> None:  # noqa: ANN001
    area = types.ModuleType("docs_area_probe")
    area.router = APIRouter()
    area.router.get("/docs/probe")(lambda: {"ok": True})
    area.app = typer.Typer()
    area.app.command("probe")(lambda: None)
    monkeypatch.setitem(sys.modules, "docs_area_probe", area)

    base_router, base_app = APIRouter(), typer.Typer()
    join_routers(base_router, "docs_area_probe", "docs_area_missing")
    join_commands(base_app, "docs_area_probe", "docs_area_missing")
    app = FastAPI()
    app.include_router(base_router)
    assert TestClient(app).get("/docs/probe").json() == {"ok": True}
    assert [c.name for c in base_app.registered_commands] == ["probe"]
