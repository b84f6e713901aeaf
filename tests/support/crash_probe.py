"""A plugin for the worker crash test (loaded with MECH_PLUGINS=tests.support.crash_probe).

Its subscriber writes an audit record per event (a database effect, which must happen
exactly once) and appends the event id to a file (an outside effect, at least once),
pausing a little so that a SIGKILL lands in the middle of a batch."""

from __future__ import annotations

import os
import time

from mechanisms.core import audit, events
from mechanisms.core.context import Ctx

PROBE_FILE = os.environ.get("MECH_PROBE_FILE", "")


@events.subscribe("crash-probe", "probe.*")
def on_probe(ctx: Ctx, message: events.EventMessage) -> None:
    audit.record(ctx, "probe.handled", "event", message.id, details={"object": message.object_id})
    with open(PROBE_FILE, "a", encoding="utf-8") as out:
        out.write(f"{message.id} {message.object_id}\n")
        out.flush()
        os.fsync(out.fileno())
    time.sleep(0.002)
