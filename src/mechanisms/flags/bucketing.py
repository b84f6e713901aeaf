"""Bucketing, version 1: which bucket a targeting key falls in for a given salt.

The algorithm is a contract with every SDK and with people's treatment groups: the
same key must land in the same bucket in every process, in every language, for as
long as a flag lives. It is written down in docs/specs/bucketing-v1.md with JSON
test vectors in tests/flags/bucketing_vectors_v1.json. Never change it without
bumping ``BUCKETING_VERSION`` and the spec.
"""

from __future__ import annotations

import mmh3

BUCKETING_VERSION = 1
# 100,000 buckets: a resolution of 1/100,000 (0.001 %).
BUCKETS = 100_000


def bucket(salt: str, key: str) -> int:
    """MurmurHash3 x86 32-bit, seed 0, of the UTF-8 bytes of ``salt + "/" + key``, as an
    unsigned integer, modulo 100,000."""
    return mmh3.hash(f"{salt}/{key}", 0, signed=False) % BUCKETS


def percent_to_buckets(percent: float) -> int:
    """0-100 % as a number of buckets, rounded to the resolution."""
    return round(percent * BUCKETS / 100)
