"""`mech ops alerts …`: integration keys from the command line."""

from __future__ import annotations

import json


def test_keys_are_created_listed_and_rotated(mech):
    assert mech("ops", "create-service", "checkout", "--owner", "payments").exit_code == 0
    created = mech("ops", "alerts", "create-key", "checkout", "--name", "alertmanager", "--json")
    assert created.exit_code == 0, created.output
    first = json.loads(created.stdout)["routing_key"]
    assert len(first) == 32
    listed = json.loads(mech("ops", "alerts", "keys", "--json").stdout)
    assert [(k["service"], k["name"], k["hint"]) for k in listed] == [
        ("checkout", "alertmanager", first[:6])
    ]
    assert "routing_key" not in listed[0]
    rotated = mech("ops", "alerts", "rotate-key", "checkout", "--name", "alertmanager", "--json")
    assert json.loads(rotated.stdout)["routing_key"] != first
    human = mech("ops", "alerts", "keys", "--service", "checkout")
    assert human.exit_code == 0 and "alertmanager" in human.output


def test_a_duplicate_or_unknown_key_is_a_clear_error(mech):
    mech("ops", "create-service", "checkout", "--owner", "payments")
    mech("ops", "alerts", "create-key", "checkout", "--name", "am")
    again = mech("ops", "alerts", "create-key", "checkout", "--name", "am")
    assert again.exit_code == 2 and "already has an integration key named 'am'" in again.output
    missing = mech("ops", "alerts", "rotate-key", "checkout", "--name", "nope")
    assert missing.exit_code == 2 and "nope" in missing.output
