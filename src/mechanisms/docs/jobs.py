"""Worker jobs: review meetings nobody ended are closed, their attendance recorded."""

from __future__ import annotations

from mechanisms.core.worker import Reconciler, register
from mechanisms.docs import reading

register(Reconciler("docs.meetings-close", reading.stale_meetings, reading.close_stale))
