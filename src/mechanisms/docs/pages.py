"""The docs web UI. Each area's pages live in a module of their own and are included here."""

from __future__ import annotations

from fastapi import APIRouter

from mechanisms.docs import pages_registry
from mechanisms.web.http import UnitOfWorkRoute

router = APIRouter(route_class=UnitOfWorkRoute, include_in_schema=False)
router.include_router(pages_registry.router)
