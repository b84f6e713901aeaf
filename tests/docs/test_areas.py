"""Area modules join the docs base router and app, whichever way they are written."""

from __future__ import annotations

import sys
import types

import typer
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mechanisms.docs.areas import join_commands, join_commands_lazily, join_routers


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


def _lazy_base(monkeypatch, area_name: str) -> tuple[typer.Typer, list[str]]:  # noqa: ANN001
    """A base app like `mech doc` (one light command) whose area is imported lazily;
    the list records when the area module is imported."""
    imported: list[str] = []
    base = typer.Typer()
    base.command("check")(lambda: print("checked"))
    base.command("rules")(lambda: print("rules"))
    join_commands_lazily(base, area_name, "docs_area_missing")
    monkeypatch.setattr(
        "mechanisms.docs.areas._load",
        lambda name: (imported.append(name), sys.modules.get(name))[1],
    )
    return base, imported


def test_a_lazy_area_is_imported_only_for_its_own_commands(monkeypatch) -> None:  # noqa: ANN001
    area = types.ModuleType("docs_area_lazy")
    area.app = typer.Typer()
    area.app.command("list")(lambda: print("listed"))
    area.app.command("show")(lambda: print("shown"))
    monkeypatch.setitem(sys.modules, "docs_area_lazy", area)
    base, imported = _lazy_base(monkeypatch, "docs_area_lazy")
    runner = CliRunner()

    assert runner.invoke(base, ["check"]).stdout == "checked\n"
    assert imported == []  # the base's own command needs no area
    assert runner.invoke(base, ["list"]).stdout == "listed\n"
    assert imported == ["docs_area_lazy", "docs_area_missing"]
    assert runner.invoke(base, ["show"]).stdout == "shown\n"
    listing = runner.invoke(base, ["--help"]).stdout
    assert all(name in listing for name in ("check", "rules", "list", "show"))
    assert runner.invoke(base, ["nope"]).exit_code == 2


def test_a_lazy_area_may_add_its_commands_to_the_base_app(monkeypatch) -> None:  # noqa: ANN001
    base, imported = _lazy_base(monkeypatch, "docs_area_adds")

    def load(name: str) -> types.ModuleType | None:
        imported.append(name)
        if name != "docs_area_adds":
            return None
        base.command("diff")(lambda: print("diffed"))  # what ``@base_app.command`` does
        return types.ModuleType(name)

    monkeypatch.setattr("mechanisms.docs.areas._load", load)
    runner = CliRunner()
    assert runner.invoke(base, ["rules"]).stdout == "rules\n"
    assert imported == []
    assert runner.invoke(base, ["diff"]).stdout == "diffed\n"
    assert imported == ["docs_area_adds", "docs_area_missing"]
