"""A plugin for the alarm crash test (MECH_PLUGINS=tests.support.alarm_crash_probe).

It writes a line to MECH_PROBE_FILE when an evaluation pass has written its transitions but
not yet committed them (then pauses, so a SIGKILL lands inside that transaction), and one per
``alarms.state_changed`` event delivered (pausing a little, so a SIGKILL lands in the
middle of the deliveries that cut tickets)."""

from __future__ import annotations

import os
import time
from typing import Any

from mechanisms.core import events
from mechanisms.core.context import Ctx
from mechanisms.ops import alarms

PROBE_FILE = os.environ.get("MECH_PROBE_FILE", "")
_record_transitions = alarms._record_transitions


def _probe(line: str) -> None:
    with open(PROBE_FILE, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def _written_then_paused(ctx: Ctx, moves: list[Any]) -> None:
    _record_transitions(ctx, moves)
    if moves:
        _probe(f"transitions {len(moves)}")
        time.sleep(1.0)


alarms._record_transitions = _written_then_paused


@events.subscribe("alarm-crash-probe", "alarms.state_changed")
def on_state_changed(ctx: Ctx, message: events.EventMessage) -> None:
    _probe(f"delivered {message.object_id}")
    time.sleep(0.005)
