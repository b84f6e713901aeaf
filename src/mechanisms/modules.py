"""The mechanisms this build contains.

Each mechanism is a package with the same files (domain, service, api, cli, pages,
tables). Importing the package (and its ``registration`` module, when it has one)
registers its tables, event subscribers and worker jobs; its ``api.router``,
``pages.router`` and ``cli.app`` are picked up here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Mechanism:
    name: str
    title: str
    summary: str
    # False until the mechanism's pages ship; the navigation shows it as coming.
    built: bool = False
    # True once its service, API and worker jobs exist, even before its pages do.
    code: bool = False
    # The `mech` command it answers to, when not its name (`mech deploy` for deploys).
    command: str = ""

    @property
    def importable(self) -> bool:
        return self.built or self.code


MECHANISMS: list[Mechanism] = [
    Mechanism("flags", "Flags", "Feature access, treatment groups, throttled rollout", built=True),
    Mechanism("ops", "Ops", "Detective metrics, alarms that act, tickets, on-call", built=True),
    Mechanism(
        "deploys",
        "Deploys",
        "Pipelines, block days, break-glass",
        built=True,
        code=True,
        command="deploy",
    ),
    Mechanism(
        "docs",
        "Docs",
        "Decision docs, checked and reviewed",
        built=True,
        code=True,
        command="doc",
    ),
    Mechanism("roadmap", "Roadmap", "Feedback and findings become the plan"),
    Mechanism("stickers", "Stickers", "Recognition for using the mechanisms well"),
]


def built() -> list[Mechanism]:
    return [m for m in MECHANISMS if m.built]


def importable() -> list[Mechanism]:
    return [m for m in MECHANISMS if m.importable]


def _optional(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def import_all() -> None:
    import mechanisms.core.tables  # noqa: F401
    from mechanisms.core.config import get_settings

    for mechanism in importable():
        importlib.import_module(f"mechanisms.{mechanism.name}")
        # A mechanism whose package must stay light to import (docs: `mech doc check`;
        # flags: the SDK) registers its tables, jobs and demo data from this module instead.
        _optional(f"mechanisms.{mechanism.name}.registration")
    for plugin in filter(None, (p.strip() for p in get_settings().plugins.split(","))):
        importlib.import_module(plugin)


def _parts(part: str, attribute: str) -> list[tuple[str, Any]]:
    """(mechanism name, attribute) for each built mechanism that has this part."""
    found = []
    for mechanism in importable():
        module = _optional(f"mechanisms.{mechanism.name}.{part}")
        if module is not None and hasattr(module, attribute):
            found.append((mechanism.name, getattr(module, attribute)))
    return found


def api_routers() -> list[Any]:
    return [router for _, router in _parts("api", "router")]


def page_routers() -> list[Any]:
    return [router for _, router in _parts("pages", "router")]


def middlewares() -> list[Any]:
    """ASGI middleware classes a mechanism's api module lists in ``middleware``."""
    return [m for _, listed in _parts("api", "middleware") for m in listed]
