"""OFREP, checked with the real OpenFeature OFREP provider (openfeature-provider-ofrep)
driving the running server, plus the bulk endpoint's ETag caching."""

from __future__ import annotations

import time

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from mechanisms.app import create_app
from mechanisms.core.clock import SystemClock
from mechanisms.core.config import Settings
from mechanisms.flags import deployments, service
from mechanisms.flags.ofrep import RULES_TTL
from tests.conftest import seed_org
from tests.support.server import serving

RULES = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "targets": {"on": ["vip"]},
    "rules": [
        {
            "id": "germany",
            "clauses": [{"attribute": "country", "op": "in", "values": ["DE"]}],
            "serve": {"variant": "on"},
        }
    ],
    "fallthrough": {"split": [{"variant": "on", "percent": 50}, {"variant": "off", "percent": 50}]},
}


@pytest.fixture
def server(db, run):
    """The app on a real port with the org, an app 'shop' and flags in beta; yields (url, token)."""
    clock = SystemClock()
    org = seed_org(db, clock)
    run(service.create_app, "shop", "Shop", "payments")
    run(service.create_flag, "shop", "checkout-v2")
    run(service.set_config, "shop", "checkout-v2", "beta", RULES)
    run(
        service.create_flag,
        "shop",
        "banner",
        flag_type="string",
        variants={"blue": "Blue", "red": "Red"},
    )
    run(
        service.create_flag,
        "shop",
        "limits",
        flag_type="object",
        variants={"low": {"max": 5}, "high": {"max": 50}},
    )
    with serving(create_app(db, clock=clock, settings=Settings())) as url:
        yield url, org.tokens["vic"]


@pytest.fixture
def client(server):
    url, token = server
    provider = OFREPProvider(
        f"{url}/sdk/shop/beta", headers_factory=lambda: {"Authorization": f"Bearer {token}"}
    )
    api.set_provider(provider)
    yield api.get_client()
    api.clear_providers()


def test_targeting_match_split_and_reasons(client):
    vip = client.get_boolean_details("checkout-v2", False, EvaluationContext("vip"))
    assert (vip.value, vip.variant, vip.reason) == (True, "on", Reason.TARGETING_MATCH)
    german = client.get_boolean_details(
        "checkout-v2", False, EvaluationContext("u-7", {"country": "DE"})
    )
    assert german.reason == Reason.TARGETING_MATCH and german.flag_metadata["ruleId"] == "germany"
    split = client.get_boolean_details(
        "checkout-v2", False, EvaluationContext("u-8", {"country": "US"})
    )
    assert split.reason == Reason.SPLIT and split.variant in ("on", "off")
    assert split.flag_metadata["version"] == 2
    banner = client.get_string_details("banner", "none", EvaluationContext("u-1"))
    assert (banner.value, banner.reason) == ("Blue", Reason.DEFAULT)
    limits = client.get_object_details("limits", {}, EvaluationContext("u-1"))
    assert limits.value == {"max": 5}


def test_errors_give_the_default_with_the_right_code(client):
    missing = client.get_boolean_details("nope", True, EvaluationContext("u-1"))
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    no_key = client.get_boolean_details(
        "checkout-v2", True, EvaluationContext(None, {"country": "US"})
    )
    assert (no_key.value, no_key.error_code, no_key.reason) == (
        True,
        ErrorCode.TARGETING_KEY_MISSING,
        Reason.ERROR,
    )
    mismatch = client.get_string_details("checkout-v2", "x", EvaluationContext("vip"))
    assert (mismatch.value, mismatch.error_code) == ("x", ErrorCode.TYPE_MISMATCH)


def test_bad_credentials_and_bodies(server):
    url, token = server
    endpoint = f"{url}/sdk/shop/beta/ofrep/v1/evaluate/flags/checkout-v2"
    assert httpx.post(endpoint, json={}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    bad = httpx.post(
        endpoint, content=b"{nope", headers={**auth, "content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["errorCode"] == "PARSE_ERROR"
    wrong = httpx.post(endpoint, json={"context": [1]}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["errorCode"] == "INVALID_CONTEXT"
    unknown_env = httpx.post(
        f"{url}/sdk/shop/nope/ofrep/v1/evaluate/flags/x", json={}, headers=auth
    )
    assert unknown_env.status_code == 404


def test_bulk_evaluation_with_etag(server, run):
    url, token = server
    endpoint = f"{url}/sdk/shop/beta/ofrep/v1/evaluate/flags"
    auth = {"Authorization": f"Bearer {token}"}
    body = {"context": {"targetingKey": "vip"}}
    first = httpx.post(endpoint, json=body, headers=auth)
    assert first.status_code == 200
    flags = {f["key"]: f for f in first.json()["flags"]}
    assert flags["checkout-v2"]["value"] is True and flags["banner"]["value"] == "Blue"
    etag = first.headers["etag"]
    again = httpx.post(endpoint, json=body, headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304
    other = httpx.post(
        endpoint, json={"context": {"targetingKey": "u-2"}}, headers={**auth, "If-None-Match": etag}
    )
    assert other.status_code == 200
    no_key = httpx.post(endpoint, json={"context": {}}, headers=auth).json()["flags"]
    assert {f["key"]: f for f in no_key}["checkout-v2"]["errorCode"] == "TARGETING_KEY_MISSING"
    run(deployments.kill, "shop", "checkout-v2", "test")
    # Remote evaluation looks for a new rule set at most once a RULES_TTL; once that has
    # passed since the kill, the very next evaluation serves the killed flag.
    time.sleep(RULES_TTL)
    changed = httpx.post(endpoint, json=body, headers={**auth, "If-None-Match": etag})
    assert changed.status_code == 200
    assert {f["key"]: f for f in changed.json()["flags"]}["checkout-v2"]["reason"] == "DISABLED"
