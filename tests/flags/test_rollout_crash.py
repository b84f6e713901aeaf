"""A rollout driven by a worker process that is SIGKILLed again and again resumes where it
stopped: every step applied exactly once, in order, none skipped, each after its wait."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from mechanisms.core.clock import SystemClock
from mechanisms.core.context import Ctx
from mechanisms.core.identity import system_principal
from mechanisms.flags import deployments, service
from tests.conftest import REPO_ROOT, seed_org

pytestmark = pytest.mark.slow

ON = {
    "variants": {"on": True, "off": False},
    "off_variant": "off",
    "fallthrough": {"variant": "on"},
}


def start_worker(db_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "MECH_DATABASE_URL": db_url,
        "MECH_WORKER_TICK_SECONDS": "0.05",
        # The repository (for the tests' plugins) before whatever path the tests run with.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mechanisms", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_rollout_survives_sigkill_of_its_worker(db):
    clock = SystemClock()
    seed_org(db, clock)

    def run(fn, *args, **kwargs):
        with db.transaction() as session:
            return fn(Ctx(session, system_principal("test"), clock.now()), *args, **kwargs)

    run(service.create_app, "shop", "Shop", "payments")
    run(service.create_flag, "shop", "checkout")
    run(
        deployments.create_strategy,
        "Linear10Every1s",
        {"type": "linear", "step_percent": 10, "interval_seconds": 1, "bake_seconds": 1},
    )
    change = run(service.set_config, "shop", "checkout", "beta", ON, strategy="Linear10Every1s")

    def state() -> str:
        return run(deployments.deployments, "shop", "checkout", "beta")[0].state

    rng = random.Random(11)
    kills, deadline = 0, time.monotonic() + 120
    while state() != "complete" and time.monotonic() < deadline:
        worker = start_worker(db.url)
        time.sleep(rng.uniform(0.3, 1.6))
        if kills < 6:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        else:
            while state() != "complete" and time.monotonic() < deadline:
                time.sleep(0.1)
            worker.terminate()
        worker.wait(10)
    assert state() == "complete" and kills == 6

    steps = run(deployments.deployment_steps, change.deployment.id)
    assert [s.percent for s in steps] == [10.0 * i for i in range(1, 11)] + [100.0]
    assert [s.state for s in steps][-2:] == ["baking", "complete"]
    waits = [b.at - a.at for a, b in zip(steps, steps[1:], strict=False)]
    assert all(w >= timedelta(seconds=1) for w in waits), waits
