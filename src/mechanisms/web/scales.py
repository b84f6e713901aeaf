"""Axis arithmetic shared by every chart the pages draw (flags' intervals, ops' graphs)."""

from __future__ import annotations

import math


def nice_ceil(value: float) -> float:
    """The next round number (1, 2, 2.5, 5 x 10^k) at or above ``value``, for axis ends."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= value * (1 - 1e-12):
            return factor * power
    return 10 * power
