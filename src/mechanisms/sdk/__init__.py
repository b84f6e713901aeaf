"""Python SDK: evaluate flags in-process from a rule set kept fresh by ETag polling or
server-sent events, with an OpenFeature provider on top; record metrics (counters, gauges,
timers) sent to the ops metrics store in the background.

    from mechanisms.sdk import FlagsClient
    flags = FlagsClient("http://mech.internal:8080", app="shop", environment="prod", token=TOKEN)
    if flags.boolean("checkout-v2", False, {"targetingKey": user.id, "country": user.country}):
        ...

    from mechanisms.sdk import Metrics
    metrics = Metrics("http://mech.internal:8080", token=TOKEN, labels={"service": "shop"})
    with metrics.timer("checkout_latency_ms"):
        ...

The OpenFeature provider needs the `openfeature` extra (`pip install
'mechanisms[openfeature]'`); it is imported on first use, so the client and the metrics
work without it. Importing this package loads nothing of the server: no SQLAlchemy, no
FastAPI, no worker, no mechanism's service code (tests/flags/test_sdk_imports.py).
"""

from typing import Any

from mechanisms.sdk.client import FlagsClient
from mechanisms.sdk.metrics import Metrics, Timer

__all__ = ["FlagsClient", "MechanismsProvider", "Metrics", "Timer"]


def __getattr__(name: str) -> Any:
    if name != "MechanismsProvider":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from mechanisms.sdk.provider import MechanismsProvider
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "openfeature":
            raise
        raise ImportError(
            "MechanismsProvider needs the OpenFeature SDK: pip install 'mechanisms[openfeature]'",
            name=exc.name,
        ) from exc
    return MechanismsProvider
