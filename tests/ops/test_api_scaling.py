"""The scaling and cost API: targets, policies, decisions and their history over HTTP,
who may do what, and bad input answered with the field named."""

from __future__ import annotations

import sys
from datetime import timedelta


def setup(client, org):
    admin = org.header("ada")
    client.post(
        "/api/v1/ops/services", json={"key": "checkout", "owner_team": "payments"}, headers=admin
    )
    return admin


def feed(client, headers, clock, value):
    now = clock.now()
    body = {
        "samples": [
            {
                "name": "cpu_utilization",
                "labels": {"service": "checkout"},
                "value": value,
                "timestamp": (now + timedelta(seconds=s)).timestamp(),
            }
            for s in range(1, 60, 15)
        ]
    }
    assert client.post("/api/v1/ops/metrics", json=body, headers=headers).status_code == 202
    clock.advance(minutes=1)


def test_targets_policies_and_a_decision_over_http(client, org, clock):
    admin = setup(client, org)
    eve = org.header("eve")
    created = client.post(
        "/api/v1/ops/scaling/targets",
        json={
            "key": "checkout-web",
            "service": "checkout",
            "min_capacity": 1,
            "max_capacity": 10,
            "desired_capacity": 2,
            "unit_cost_per_hour": 0.25,
        },
        headers=eve,
    )
    assert created.status_code == 201, created.text
    assert created.json()["action"] == {"kind": "event"}
    policy = client.post(
        "/api/v1/ops/scaling/policies",
        json={
            "name": "checkout-cpu",
            "target": "checkout-web",
            "metric": "cpu_utilization",
            "match": {"service": "checkout"},
            "target_value": 50,
        },
        headers=eve,
    )
    assert policy.status_code == 201, policy.text
    feed(client, admin, clock, 90)
    decided = client.post("/api/v1/ops/scaling/policies/checkout-cpu/evaluate", headers=eve)
    assert decided.status_code == 200, decided.text
    assert (decided.json()["from_capacity"], decided.json()["to_capacity"]) == (2, 4)
    assert decided.json()["trigger"] == "manual"
    viewer = org.header("vic")
    target = client.get("/api/v1/ops/scaling/targets/checkout-web", headers=viewer).json()
    assert target["desired_capacity"] == 4
    history = client.get("/api/v1/ops/scaling/targets/checkout-web/history", headers=viewer)
    assert [(d["to_capacity"], d["policy"]) for d in history.json()] == [(4, "checkout-cpu")]
    patched = client.patch(
        "/api/v1/ops/scaling/policies/checkout-cpu",
        json={"target_value": 70, "disable_scale_in": True},
        headers=eve,
    )
    assert patched.json()["target_value"] == 70 and patched.json()["disable_scale_in"] is True
    reported = client.put(
        "/api/v1/ops/scaling/targets/checkout-web/capacity",
        json={"current_capacity": 3},
        headers=eve,
    )
    assert reported.json()["current_capacity"] == 3
    assert client.get("/api/v1/ops/costs", headers=viewer).status_code == 200
    assert (
        client.delete("/api/v1/ops/scaling/policies/checkout-cpu", headers=eve).status_code == 204
    )
    assert client.delete("/api/v1/ops/scaling/targets/checkout-web", headers=eve).status_code == 204
    gone = client.get("/api/v1/ops/scaling/targets/checkout-web", headers=viewer)
    assert gone.status_code == 404


def test_viewers_read_and_only_site_admins_configure_commands(client, org):
    setup(client, org)
    command = {"kind": "command", "argv": [sys.executable, "-c", "pass"]}
    body = {"key": "w", "service": "checkout", "min_capacity": 1, "max_capacity": 3}
    viewer = client.post("/api/v1/ops/scaling/targets", json=body, headers=org.header("vic"))
    assert viewer.status_code == 403
    engineer = client.post(
        "/api/v1/ops/scaling/targets", json={**body, "action": command}, headers=org.header("eve")
    )
    assert engineer.status_code == 403
    admin = client.post(
        "/api/v1/ops/scaling/targets", json={**body, "action": command}, headers=org.header("ada")
    )
    assert admin.status_code == 201 and admin.json()["action"]["argv"][0] == sys.executable


def test_bad_input_names_the_field(client, org):
    admin = setup(client, org)
    body = {"key": "w", "service": "checkout", "min_capacity": 5, "max_capacity": 3}
    refused = client.post("/api/v1/ops/scaling/targets", json=body, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "max_capacity"
    body["max_capacity"] = 8
    assert client.post("/api/v1/ops/scaling/targets", json=body, headers=admin).status_code == 201
    policy = {"name": "p", "target": "w", "metric": "cpu", "target_value": 50, "statistic": "p999x"}
    refused = client.post("/api/v1/ops/scaling/policies", json=policy, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "statistic"
    hook = {**body, "key": "w2", "action": {"kind": "webhook", "webhook_id": 999}}
    refused = client.post("/api/v1/ops/scaling/targets", json=hook, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["field"] == "action.webhook_id"
    assert client.get("/api/v1/ops/scaling/targets", headers=admin).json()[0]["key"] == "w"


def test_the_cost_page_lists_an_idle_fleet_with_its_saving(client, org, run):
    from mechanisms.ops import scaling_demo

    setup(client, org)
    run(scaling_demo.seed_idle_fleet, "checkout", days=2)
    viewer = org.header("vic")
    [finding] = client.get("/api/v1/ops/costs", headers=viewer).json()
    assert finding["target"] == "workers" and finding["sufficient_capacity"] == 2
    page = client.get("/ops/costs", headers=viewer)
    assert page.status_code == 200
    assert 'data-target="workers"' in page.text
    assert f"{finding['monthly_saving']:.2f}" in page.text
    listing = client.get("/ops/scaling", headers=viewer)
    assert 'href="/ops/scaling/workers"' in listing.text
    assert client.get("/ops/scaling/nothing", headers=viewer).status_code == 404
