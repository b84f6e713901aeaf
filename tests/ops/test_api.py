"""The ops HTTP API: metrics in as JSON and Prometheus text, queries, alarms."""

from __future__ import annotations

from datetime import timedelta


def test_metrics_and_alarms_over_http(client, org, clock):
    admin = org.header("ada")
    assert (
        client.post(
            "/api/v1/ops/services",
            json={"key": "checkout", "owner_team": "payments"},
            headers=admin,
        ).status_code
        == 201
    )
    now = clock.now()
    body = {
        "samples": [
            {
                "name": "api_latency_ms",
                "labels": {"service": "checkout"},
                "value": 100 + i,
                "timestamp": (now - timedelta(seconds=i)).timestamp(),
            }
            for i in range(30)
        ]
    }
    sent = client.post("/api/v1/ops/metrics", json=body, headers=admin)
    assert sent.status_code == 202 and sent.json()["accepted"] == 30
    text = 'queue_depth{queue="emails"} 12\n'
    assert (
        client.post(
            "/api/v1/ops/metrics/prometheus",
            content=text,
            headers={**admin, "content-type": "text/plain"},
        ).status_code
        == 202
    )
    window = {
        "name": "api_latency_ms",
        "statistic": "max",
        "start": (now - timedelta(minutes=2)).isoformat(),
        "end": (now + timedelta(minutes=1)).isoformat(),
        "period": 60,
        "match": "service=checkout",
    }
    points = client.get("/api/v1/ops/metrics/query", params=window, headers=admin).json()
    assert max(p["value"] for p in points if p["value"] is not None) == 129
    alarm = {
        "name": "slow",
        "service": "checkout",
        "metric": "api_latency_ms",
        "definition": {
            "statistic": "p99",
            "comparison": "GreaterThanThreshold",
            "threshold": 500,
            "period_seconds": 60,
            "evaluation_periods": 1,
            "datapoints_to_alarm": 1,
        },
    }
    assert client.post("/api/v1/ops/alarms", json=alarm, headers=admin).status_code == 201
    set_state = client.put(
        "/api/v1/ops/alarms/slow/state", json={"state": "ALARM", "reason": "drill"}, headers=admin
    )
    assert set_state.status_code == 200 and set_state.json()["state"] == "ALARM"
    assert (
        client.get("/api/v1/ops/alarms/slow/history", headers=admin).json()[0]["to_state"]
        == "ALARM"
    )


def test_bad_metric_input_is_a_clear_4xx(client, org):
    admin = org.header("ada")
    malformed = client.post(
        "/api/v1/ops/metrics",
        content=b"{nope",
        headers={**admin, "content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    nan = client.post(
        "/api/v1/ops/metrics",
        content=b'{"samples": [{"name": "x", "value": NaN}]}',
        headers={**admin, "content-type": "application/json"},
    )
    assert nan.status_code == 422 and "finite" in nan.json()["error"]["message"]
    bad_text = client.post(
        "/api/v1/ops/metrics/prometheus",
        content="ok 1\nbroken{ 2\n",
        headers={**admin, "content-type": "text/plain"},
    )
    assert bad_text.status_code == 422 and "line 2" in bad_text.json()["error"]["message"]
    viewer = client.post("/api/v1/ops/metrics", json={"samples": []}, headers=org.header("vic"))
    assert viewer.status_code == 403
