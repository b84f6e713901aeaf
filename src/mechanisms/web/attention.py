"""What needs the signed-in person's attention, gathered from every mechanism.

Each mechanism registers a provider: a function from the person's context to the
items they should act on (an approval to give, a page to acknowledge, a review
to write). The home page lists them, most urgent first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from mechanisms.core.context import Ctx
from mechanisms.core.identity import Role
from mechanisms.core.permissions import site_role
from mechanisms.core.tables import Delivery


@dataclass(frozen=True)
class Item:
    title: str
    detail: str
    link: str
    # 1 is the most urgent.
    urgency: int = 3
    mechanism: str = "core"


Provider = Callable[[Ctx], list[Item]]
_providers: dict[str, Provider] = {}


def provide(name: str) -> Callable[[Provider], Provider]:
    def register(provider: Provider) -> Provider:
        _providers[name] = provider
        return provider

    return register


def collect(ctx: Ctx) -> list[Item]:
    items = [item for provider in _providers.values() for item in provider(ctx)]
    return sorted(items, key=lambda i: (i.urgency, i.title))


@provide("core.dead_deliveries")
def dead_deliveries(ctx: Ctx) -> list[Item]:
    if site_role(ctx) != Role.ADMIN:
        return []
    dead = ctx.session.execute(
        select(func.count()).select_from(Delivery).where(Delivery.status == "dead")
    ).scalar_one()
    if not dead:
        return []
    return [
        Item(
            title=f"{dead} event deliver{'y' if dead == 1 else 'ies'} gave up",
            detail="A webhook or subscriber failed every retry. Fix the receiver, then retry.",
            link="/events?status=dead",
            urgency=2,
        )
    ]
