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


# MurmurHash3 x86 32-bit over the UTF-8 bytes of a str: murmur3(text, 0, False) is unsigned.
murmur3 = mmh3.hash


def key_text(value: object) -> str:
    """The text a key is hashed as: strings as they are, booleans as ``true``/``false``,
    whole numbers in decimal, other numbers in their shortest round-trip form (the JSON
    text of the value)."""
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bucket(salt: str, key: object) -> int:
    """MurmurHash3 x86 32-bit, seed 0, of the UTF-8 bytes of ``salt + "/" + key``, as an
    unsigned integer, modulo 100,000."""
    return mmh3.hash(f"{salt}/{key_text(key)}", 0, False) % BUCKETS


def percent_to_buckets(percent: float) -> int:
    """0-100 % as a number of buckets, rounded to the resolution."""
    return round(percent * BUCKETS / 100)
