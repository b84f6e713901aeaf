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
"""

from mechanisms.sdk.client import FlagsClient
from mechanisms.sdk.metrics import Metrics, Timer
from mechanisms.sdk.provider import MechanismsProvider

__all__ = ["FlagsClient", "MechanismsProvider", "Metrics", "Timer"]
