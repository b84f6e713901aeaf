"""Deployment strategies and the step plan a rollout follows (domain: no clock reads).

A plan is a list of steps ``(wait_seconds, percent)``: wait this long after the
previous step was applied, then serve the new version to this share of keys. The
last step is always 100 %, followed by the bake time during which monitors can
still roll the deployment back. Waits are measured from when the previous step was
really applied, so a worker that was down resumes where it stopped: no step is
skipped, none is repeated.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_STEPS = 1000


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["all_at_once", "linear", "exponential", "canary"]
    # linear: add this share each step; exponential: the first step's share.
    step_percent: float | None = Field(default=None, gt=0, le=100)
    # exponential: multiply the share by this each step.
    growth_factor: float | None = Field(default=None, gt=1, le=100)
    # canary: hold this share for canary_seconds, then go to everyone.
    canary_percent: float | None = Field(default=None, gt=0, lt=100)
    interval_seconds: int = Field(default=0, ge=0, le=30 * 86400)
    bake_seconds: int = Field(default=0, ge=0, le=30 * 86400)

    @model_validator(mode="after")
    def _parameters_fit_the_type(self) -> Strategy:
        needs = {
            "linear": ["step_percent"],
            "exponential": ["step_percent", "growth_factor"],
            "canary": ["canary_percent"],
            "all_at_once": [],
        }[self.type]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} strategy needs {', '.join(missing)}")
        if self.type != "all_at_once" and self.interval_seconds == 0:
            raise ValueError(f"a {self.type} strategy needs interval_seconds > 0")
        if len(plan(self)) > MAX_STEPS:
            raise ValueError(f"the strategy would take more than {MAX_STEPS} steps")
        return self


def plan(strategy: Strategy) -> list[tuple[int, float]]:
    """The steps of a rollout: (seconds to wait after the previous step, percent)."""
    if strategy.type == "all_at_once":
        return [(0, 100.0)]
    if strategy.type == "canary":
        assert strategy.canary_percent is not None
        return [(0, strategy.canary_percent), (strategy.interval_seconds, 100.0)]
    shares: list[float] = []
    if strategy.type == "linear":
        assert strategy.step_percent is not None
        count = math.ceil(100 / strategy.step_percent - 1e-9)
        if count > MAX_STEPS:
            return [(0, 0.0)] * (MAX_STEPS + 1)
        shares = [min(100.0, round(strategy.step_percent * (i + 1), 3)) for i in range(count)]
    else:
        assert strategy.step_percent is not None and strategy.growth_factor is not None
        share = strategy.step_percent
        while share < 100 and len(shares) <= MAX_STEPS:
            shares.append(round(share, 3))
            share *= strategy.growth_factor
        shares.append(100.0)
    return [(0 if i == 0 else strategy.interval_seconds, share) for i, share in enumerate(shares)]


def total_seconds(strategy: Strategy) -> int:
    return sum(wait for wait, _ in plan(strategy)) + strategy.bake_seconds


# The strategies AWS AppConfig predefines, by the same names and figures.
PREDEFINED: dict[str, tuple[str, Strategy]] = {
    "AllAtOnce": (
        "Everyone at once, then a 10-minute bake.",
        Strategy(type="all_at_once", bake_seconds=600),
    ),
    "Linear20PercentEvery6Minutes": (
        "20 % more every 6 minutes over 30 minutes, then a 30-minute bake.",
        Strategy(type="linear", step_percent=20, interval_seconds=360, bake_seconds=1800),
    ),
    "Canary10Percent20Minutes": (
        "10 % for 20 minutes, then everyone, then a 10-minute bake.",
        Strategy(type="canary", canary_percent=10, interval_seconds=1200, bake_seconds=600),
    ),
    "Linear50PercentEvery30Seconds": (
        "50 % more every 30 seconds over 1 minute, then a 1-minute bake.",
        Strategy(type="linear", step_percent=50, interval_seconds=30, bake_seconds=60),
    ),
}
