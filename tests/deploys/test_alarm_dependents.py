"""An ops alarm that a pipeline stage lists, or a deploy bakes under, cannot be deleted or
renamed: the answer is a 409 listing what depends on it (ops asks deploys through the
watcher deploys registers; ops imports nothing of deploys)."""

from __future__ import annotations

from mechanisms.deploys import pipelines
from mechanisms.ops import alarms

from .conftest import ALARM_DEFINITION, ship

OPS = "/api/v1/ops/alarms"


def refusal(response):
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "alarm_in_use"
    return error["details"]["dependents"]


def test_an_alarm_a_stage_watches_is_neither_deleted_nor_renamed(client, org, run, checkout):
    eve = org.header("eve")
    deleted = client.delete(f"{OPS}/checkout-errors", headers=eve)
    assert refusal(deleted) == ["pipeline stage checkout/beta"]
    renamed = client.patch(f"{OPS}/checkout-errors", json={"name": "errs"}, headers=eve)
    assert refusal(renamed) == ["pipeline stage checkout/beta"]
    # Taking the alarm off the stage is a protected change (a leader's): deleting the alarm
    # must not be the way around it.

    ship(run)
    run(pipelines.promote, "checkout", "beta", "v1")
    deleted = client.delete(f"{OPS}/checkout-errors", headers=eve)
    assert refusal(deleted) == ["deploy baking in checkout/beta"]
    assert client.get(f"{OPS}/checkout-errors", headers=eve).status_code == 200


def test_an_alarm_nothing_watches_is_renamed_and_deleted(client, org, run, checkout):
    eve = org.header("eve")
    run(
        alarms.create_alarm,
        "checkout-slow",
        "checkout",
        metric="latency",
        definition=ALARM_DEFINITION,
        severity=3,
    )
    renamed = client.patch(f"{OPS}/checkout-slow", json={"name": "errs"}, headers=eve)
    assert renamed.status_code == 200 and renamed.json()["name"] == "errs"
    assert client.get(f"{OPS}/checkout-slow", headers=eve).status_code == 404
    assert client.delete(f"{OPS}/errs", headers=eve).status_code == 204
    assert client.get(f"{OPS}/errs", headers=eve).status_code == 404
    # A viewer may do neither, watched or not.
    vic = org.header("vic")
    assert client.delete(f"{OPS}/errs", headers=vic).status_code in (403, 404)
