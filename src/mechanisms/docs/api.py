"""HTTP API of the docs mechanism (`/api/v1/docs/…`). Each area's routes live in a module
of its own and are included here."""

from __future__ import annotations

from fastapi import APIRouter

from mechanisms.docs import api_registry
from mechanisms.web.http import UnitOfWorkRoute

router = APIRouter(route_class=UnitOfWorkRoute)
router.include_router(api_registry.router)
