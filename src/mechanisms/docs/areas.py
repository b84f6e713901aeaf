"""The docs interfaces are split by area: checking lives in api.py, cli.py and
pages.py, the decision-doc registry in api_registry.py, cli_registry.py and
pages_registry.py. modules.py picks up only ``docs.api.router``, ``docs.pages.router``
and ``docs.cli.app``, so each base module joins its area modules here.

An area module either adds its routes or commands to the base router or app (it
imports them from the base module), or defines a ``router`` / ``app`` of its own,
which is then included.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def join_routers(router: Any, *module_names: str) -> None:
    for name in module_names:
        module = _load(name)
        own = getattr(module, "router", None)
        if own is not None and own is not router:
            router.include_router(own)


def join_commands(app: Any, *module_names: str) -> None:
    for name in module_names:
        module = _load(name)
        own = getattr(module, "app", None)
        if own is not None and own is not app:
            app.registered_commands.extend(own.registered_commands)
            app.registered_groups.extend(own.registered_groups)


def join_commands_lazily(app: Any, *module_names: str) -> None:
    """Like ``join_commands``, but the area modules are imported only when `mech doc`
    is asked for a command it does not have yet (or for its full list). `mech doc check`
    runs in pre-commit hooks and CI: it should not pay for the registry's database code."""
    from typer.core import TyperGroup
    from typer.main import get_group

    joined = False

    def join() -> None:
        nonlocal joined
        if not joined:
            joined = True
            join_commands(app, *module_names)

    class AreaGroup(TyperGroup):
        areas_added = False

        def _add_areas(self) -> None:
            if self.areas_added:
                return
            self.areas_added = True
            join()
            # Commands an area added, to the base app or through its own app.
            for name, command in get_group(app).commands.items():
                self.commands.setdefault(name, command)

        def list_commands(self, ctx: Any) -> list[str]:
            self._add_areas()
            return super().list_commands(ctx)

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            found = super().get_command(ctx, cmd_name)
            if found is None:
                self._add_areas()
                found = super().get_command(ctx, cmd_name)
            return found

    app.info.cls = AreaGroup
