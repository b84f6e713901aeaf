"""An ops alarm a running flag rollout watches cannot be deleted or renamed (the rollout
would lose its protection silently): refused with the rollout named; once the rollout is
over, the alarm is free again. Ops learns this from the watcher flags registers."""

from __future__ import annotations

import pytest

from mechanisms.core.errors import NotFound
from mechanisms.flags import deployments, service
from mechanisms.ops import alarm_dependents
from mechanisms.ops import alarms as ops_alarms
from tests.flags.conftest import watched_alarm
from tests.flags.test_service import ON_FOR_ALL


def test_a_running_rollouts_alarm_is_neither_deleted_nor_renamed(db, checkout, run):
    run(watched_alarm, "checkout-latency")
    change = run(
        service.set_config,
        "shop",
        "checkout-v2",
        "beta",
        ON_FOR_ALL,
        strategy="Linear20PercentEvery6Minutes",
        monitors={"alarms": ["checkout-latency"]},
    )
    rollout = f"flag rollout #{change.deployment.id} of shop/checkout-v2 in beta"
    with pytest.raises(alarm_dependents.AlarmInUse) as deleting:
        run(alarm_dependents.delete_alarm, "checkout-latency")
    assert deleting.value.details == {"alarm": "checkout-latency", "dependents": [rollout]}
    with pytest.raises(alarm_dependents.AlarmInUse, match="shop/checkout-v2 in beta"):
        run(alarm_dependents.rename_alarm, "checkout-latency", "latency")

    run(deployments.rollback, change.deployment.id, "support tickets")
    assert run(alarm_dependents.rename_alarm, "checkout-latency", "latency").name == "latency"
    run(alarm_dependents.delete_alarm, "latency")
    with pytest.raises(NotFound):
        run(ops_alarms.get_alarm, "latency")
