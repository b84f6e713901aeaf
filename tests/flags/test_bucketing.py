"""Bucketing v1 against its spec: vectors, the reference hash, stickiness, uniformity."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mechanisms.flags.bucketing import BUCKETING_VERSION, BUCKETS, bucket, percent_to_buckets

VECTORS = json.loads((Path(__file__).parent / "bucketing_vectors_v1.json").read_text())


def test_the_vectors_still_hold():
    assert VECTORS["bucketing_version"] == BUCKETING_VERSION == 1
    assert VECTORS["buckets"] == BUCKETS
    for case in VECTORS["cases"]:
        assert f"{case['salt']}/{case['key']}".encode().hex() == case["message_utf8_hex"]
        assert bucket(case["salt"], case["key"]) == case["bucket"] == case["hash"] % BUCKETS
    for case in VECTORS["percent_to_buckets"]:
        assert percent_to_buckets(case["percent"]) == case["buckets"]


def test_the_hash_is_murmur3_x86_32_as_published():
    import mmh3

    for ref in VECTORS["hash_reference"]:
        assert mmh3.hash(ref["input"], 0, signed=False) == ref["hash"]


@given(st.text(max_size=40), st.text(max_size=40), st.floats(0, 100), st.floats(0, 100))
def test_a_group_only_grows_as_its_percentage_grows(salt, key, p1, p2):
    low, high = sorted((p1, p2))
    b = bucket(salt, key)
    if b < percent_to_buckets(low):
        assert b < percent_to_buckets(high)


@given(st.text(max_size=40), st.text(max_size=40))
def test_buckets_are_in_range_and_stable(salt, key):
    assert 0 <= bucket(salt, key) < BUCKETS
    assert bucket(salt, key) == bucket(salt, key)


def test_buckets_are_uniform():
    bins = [0] * 100
    n = 200_000
    for i in range(n):
        bins[bucket("uniformity", f"user-{i}") * 100 // BUCKETS] += 1
    expected = n / 100
    chi2 = sum((count - expected) ** 2 / expected for count in bins)
    # The 0.999 quantile of chi-square with 99 degrees of freedom is 148.2.
    assert chi2 < 148.2


def test_different_salts_give_independent_groups():
    keys = [f"user-{i}" for i in range(50_000)]
    in_a = {k for k in keys if bucket("flag-a", k) < 50_000}
    in_b = {k for k in keys if bucket("flag-b", k) < 50_000}
    overlap = len(in_a & in_b) / len(keys)
    assert abs(overlap - 0.25) < 0.01
