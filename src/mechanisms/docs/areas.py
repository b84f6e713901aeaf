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
