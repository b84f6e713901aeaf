"""`mech ops ingest-keys …`: an operator on the server hands an exporter a key that writes
one service's samples, rotates it and revokes it."""

from __future__ import annotations

import json


def _push(client, clock, service: str, key: str) -> int:
    sample = {"name": "requests", "labels": {"service": service}, "value": 1.0}
    body = {"samples": [{**sample, "timestamp": clock.now().isoformat()}]}
    return client.post(
        "/api/v1/ops/metrics", json=body, headers={"X-Mech-Ingest-Key": key}
    ).status_code


def test_a_key_is_created_used_rotated_and_revoked(mech, client, clock):
    for service in ("checkout", "search"):
        assert mech("ops", "create-service", service, "--owner", "payments").exit_code == 0
    created = mech("ops", "ingest-keys", "create", "checkout", "--name", "exporter", "--json")
    assert created.exit_code == 0, created.output
    first = json.loads(created.stdout)["key"]
    assert _push(client, clock, "checkout", first) == 202
    assert _push(client, clock, "search", first) == 403

    listed = json.loads(mech("ops", "ingest-keys", "list", "checkout", "--json").stdout)
    assert [k["name"] for k in listed] == ["exporter"]
    assert first.startswith(listed[0]["hint"]) and "key" not in listed[0]

    rotated = mech("ops", "ingest-keys", "rotate", "checkout", "--name", "exporter")
    assert rotated.exit_code == 0 and "shown this once" in rotated.output
    second = rotated.output.split("key: ")[1].split()[0]
    assert _push(client, clock, "checkout", first) == 401  # the old secret is no key now
    assert _push(client, clock, "checkout", second) == 202

    assert mech("ops", "ingest-keys", "revoke", "checkout", "--name", "exporter").exit_code == 0
    assert _push(client, clock, "checkout", second) == 401
    missing = mech("ops", "ingest-keys", "revoke", "checkout", "--name", "exporter")
    assert missing.exit_code == 2 and "exporter" in missing.output
