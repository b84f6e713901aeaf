"""Typed links from a decision to what it authorised, checked against the mechanism that
owns the target: a flag (``app/flag``), a deploy (``service`` or ``service@version``), a
roadmap item (free reference until the roadmap mechanism exists)."""

from __future__ import annotations

from collections.abc import Callable

from mechanisms.core.context import Ctx
from mechanisms.core.errors import InvalidInput, NotFound

KINDS = ("roadmap", "flag", "deploy")
MAX_REF = 300


def _flag(ctx: Ctx, ref: str) -> None:
    from mechanisms.flags import service as flags

    app, sep, key = ref.partition("/")
    if not sep or not app or not key:
        raise InvalidInput(
            f"a flag link is app/flag, e.g. shop/new-checkout (got {ref!r})",
            details={"field": "links"},
        )
    flags.get_flag(ctx, flags.get_app(ctx, app), key)


def _deploy(ctx: Ctx, ref: str) -> None:
    from mechanisms.deploys import pipelines

    service, _, version = ref.partition("@")
    pipelines.get_pipeline(ctx, service)
    if version:
        pipelines.get_version(ctx, service, version)


def _roadmap(_ctx: Ctx, ref: str) -> None:
    # The roadmap mechanism does not exist yet: any reference is taken as written.
    return None


CHECKS: dict[str, Callable[[Ctx, str], None]] = {
    "roadmap": _roadmap,
    "flag": _flag,
    "deploy": _deploy,
}


def check(ctx: Ctx, kind: str, ref: str) -> tuple[str, str]:
    """The link as stored, or a 422 saying what does not exist."""
    kind, ref = kind.strip().lower(), ref.strip()
    if kind not in CHECKS:
        raise InvalidInput(
            f"unknown link kind {kind!r}; the kinds are {', '.join(KINDS)}",
            details={"field": "links"},
        )
    if not ref or len(ref) > MAX_REF or "\x00" in ref:
        raise InvalidInput(
            f"a {kind} link needs a reference of 1 to {MAX_REF} characters",
            details={"field": "links"},
        )
    try:
        CHECKS[kind](ctx, ref)
    except NotFound as exc:
        raise InvalidInput(
            f"the {kind} link {ref!r} names nothing: {exc.message}",
            code="unknown_link_target",
            details={"field": "links", "kind": kind, "ref": ref},
        ) from None
    return kind, ref
