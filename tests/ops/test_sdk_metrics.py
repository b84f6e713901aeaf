"""The metrics recorder of the Python SDK against the real app served over HTTP: what it
records arrives, a server that is away loses nothing (up to the buffer), a refused batch
is dropped and counted instead of sent forever, timers time sync and async code."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from mechanisms.app import create_app
from mechanisms.core.clock import SystemClock
from mechanisms.core.config import Settings
from mechanisms.ops import metrics as store
from mechanisms.sdk import Metrics
from tests.conftest import seed_org
from tests.support.server import free_port, serving


@pytest.fixture
def tokens(sqlite_db):
    return seed_org(sqlite_db, SystemClock()).tokens


@pytest.fixture
def app(sqlite_db):
    return create_app(sqlite_db, clock=SystemClock(), settings=Settings())


def stored(db, name, statistic="sum", match=None):
    """One value over the last two hours (what the store answers for the whole span)."""
    now = SystemClock().now()
    with db.transaction(write=False) as session:
        points = store.query(
            session,
            name,
            match or {},
            statistic,
            now - timedelta(hours=1),
            now + timedelta(minutes=1),
            3600,
        )
    values = [v for _, v in points if v is not None]
    if statistic == "sum" or statistic == "count":
        return sum(values)
    return values[0] if values else None


def test_counters_gauges_and_timers_arrive_with_their_labels(sqlite_db, tokens, app):
    with (
        serving(app) as url,
        Metrics(url, tokens["robot"], labels={"service": "shop"}, start=False) as metrics,
    ):
        metrics.counter("orders", 2, {"country": "fr"})
        metrics.counter("orders", 3, {"country": "de"})
        metrics.gauge("queue_depth", 17)
        with metrics.timer("db_query_ms", {"table": "orders"}):
            time.sleep(0.01)
        assert metrics.flush() is True
        assert metrics.pending == 0
    assert stored(sqlite_db, "orders") == 5
    assert stored(sqlite_db, "orders", match={"country": "de", "service": "shop"}) == 3
    assert stored(sqlite_db, "queue_depth", "max") == 17
    assert stored(sqlite_db, "db_query_ms", "count", {"table": "orders"}) == 1


def test_many_increments_of_one_series_at_once_all_count(sqlite_db, tokens, app):
    # A tight loop records many samples within one microsecond of each other; the
    # server would count equal values at one instant once.
    with serving(app) as url, Metrics(url, tokens["robot"], start=False) as metrics:
        for _ in range(5000):
            metrics.counter("clicks")
        assert metrics.flush()
    assert stored(sqlite_db, "clicks") == 5000


def test_several_threads_recording_lose_nothing(sqlite_db, tokens, app):
    with serving(app) as url:
        metrics = Metrics(url, tokens["robot"], flush_seconds=0.05, batch_size=500)

        def work(n: int) -> None:
            for i in range(1000):
                metrics.counter("jobs", 1, {"worker": str(n)})
                if i % 100 == 0:
                    metrics.observe("job_size", i)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        metrics.close()
        assert metrics.pending == 0 and metrics.dropped["overflow"] == 0
    assert stored(sqlite_db, "jobs") == 8000
    assert stored(sqlite_db, "jobs", match={"worker": "5"}) == 1000
    assert stored(sqlite_db, "job_size", "count") == 80


def test_decorated_sync_and_async_functions_are_timed_each_call(sqlite_db, tokens, app):
    with serving(app) as url, Metrics(url, tokens["robot"], start=False) as metrics:

        @metrics.timer("work_ms", {"kind": "sync"})
        def work(seconds: float) -> str:
            time.sleep(seconds)
            return "done"

        @metrics.timer("work_ms", {"kind": "async"})
        async def awork(seconds: float) -> str:
            await asyncio.sleep(seconds)
            return "done"

        async def both() -> list[str]:
            async with metrics.timer("block_ms"):
                return list(await asyncio.gather(awork(0.05), awork(0.1)))

        # The caller's own clock around each call bounds what the timer may report.
        outside_ms = {"sync": 0.0, "async": 0.0}
        for seconds in (0.05, 0.1):
            began = time.perf_counter()
            assert work(seconds) == "done"
            outside_ms["sync"] = max(outside_ms["sync"], (time.perf_counter() - began) * 1000)
        # In a thread of its own: a browser test's event loop may still run in this one.
        with ThreadPoolExecutor(1) as thread:
            began = time.perf_counter()
            assert thread.submit(asyncio.run, both()).result() == ["done", "done"]
            outside_ms["async"] = (time.perf_counter() - began) * 1000
        assert work.__name__ == "work" and awork.__name__ == "awork"
        with pytest.raises(ZeroDivisionError):
            metrics.timer("failing_ms")(lambda: 1 / 0)()
        assert metrics.flush()
    for kind in ("sync", "async"):
        low = stored(sqlite_db, "work_ms", "min", {"kind": kind})
        high = stored(sqlite_db, "work_ms", "max", {"kind": kind})
        # Sleeping 50 and 100 ms: the timer sees at least that, in milliseconds, the longer
        # call as the longer, and never more than the caller saw around the calls.
        assert 50 <= low < high, (kind, low, high)
        assert 100 <= high <= outside_ms[kind], (kind, high, outside_ms[kind])
    assert 100 <= stored(sqlite_db, "block_ms", "max") < 175
    assert stored(sqlite_db, "failing_ms", "count") == 1


def test_a_server_that_is_down_gets_everything_when_it_comes_back(sqlite_db, tokens, app, caplog):
    port = free_port()
    metrics = Metrics(
        f"http://127.0.0.1:{port}", tokens["robot"], flush_seconds=0.05, max_backoff_seconds=0.2
    )
    with caplog.at_level(logging.WARNING, logger="mechanisms.sdk.metrics"):
        for _ in range(300):
            metrics.counter("payments")
        time.sleep(0.5)  # several attempts while nobody listens
        assert metrics.pending == 300 and metrics.last_error is not None
        with serving(app, port=port):
            deadline = time.monotonic() + 10
            while metrics.pending and time.monotonic() < deadline:
                time.sleep(0.05)
            assert metrics.pending == 0
            metrics.close()
    assert stored(sqlite_db, "payments") == 300
    # The outage is reported once, not once per attempt.
    assert sum("Connection refused" in r.getMessage() for r in caplog.records) == 1


def test_a_full_buffer_drops_the_oldest_and_reports_how_many(sqlite_db, tokens, app):
    port = free_port()
    metrics = Metrics(
        f"http://127.0.0.1:{port}", tokens["robot"], batch_size=10, max_buffer=100, start=False
    )
    for i in range(250):
        metrics.gauge("temperature", i)
    assert metrics.flush() is False
    assert metrics.pending == 100 and metrics.dropped["overflow"] == 150
    with serving(app, port=port):
        assert metrics.flush()
        metrics.close()
    # The newest 100 arrived, and the drop count with them.
    assert stored(sqlite_db, "temperature", "count") == 100
    assert stored(sqlite_db, "temperature", "min") == 150
    assert stored(sqlite_db, "mech_sdk_dropped_samples", match={"reason": "overflow"}) == 150


def test_a_refused_batch_is_not_sent_forever(sqlite_db, tokens, app, caplog):
    with serving(app) as url, caplog.at_level(logging.WARNING, logger="mechanisms.sdk.metrics"):
        # A viewer may not write metrics: every batch is refused with 403.
        metrics = Metrics(url, tokens["vic"], batch_size=10, start=False)
        for _ in range(3):
            for _ in range(25):
                metrics.counter("denied")
            assert metrics.flush() is True  # settled: nothing is left to retry
        assert metrics.pending == 0 and metrics.dropped["refused"] >= 75
        assert sum("refused a batch" in r.getMessage() for r in caplog.records) == 1
        metrics.close()
    assert stored(sqlite_db, "denied") == 0


def test_the_samples_a_refusal_names_are_dropped_and_the_rest_sent(sqlite_db, tokens, app):
    with serving(app) as url, Metrics(url, tokens["robot"], start=False) as metrics:
        metrics.counter("signups", 1)
        # Two days old: older than the store's accepted window, so the server refuses
        # the batch and names this sample.
        metrics.counter("signups", 100, at=time.time() - 2 * 86400)
        metrics.counter("signups", 1)
        assert metrics.flush()
        assert metrics.dropped["refused"] == 1
    assert stored(sqlite_db, "signups") == 2


def test_bad_names_and_values_fail_where_they_are_recorded(tokens):
    metrics = Metrics("http://127.0.0.1:9", tokens["robot"], start=False)
    with pytest.raises(ValueError, match="metric name"):
        metrics.counter("not a name")
    with pytest.raises(ValueError, match="label"):
        metrics.gauge("ok", 1, {"bad-label": "x"})
    with pytest.raises(ValueError, match="number"):
        metrics.gauge("ok", "12")  # type: ignore[arg-type]
    metrics.gauge("ok", float("nan"))
    assert metrics.pending == 0 and metrics.dropped["invalid"] == 1


def test_a_forked_child_sends_its_own_samples_and_not_its_parents(sqlite_db, tokens, app):
    with serving(app) as url:
        metrics = Metrics(url, tokens["robot"], start=False)
        metrics.counter("forks", 1, {"who": "parent"})
        pid = os.fork()
        if pid == 0:  # the child: records, sends, and leaves at once
            metrics.counter("forks", 1, {"who": "child"})
            os._exit(0 if metrics.flush() else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert metrics.flush()
        metrics.close()
    assert stored(sqlite_db, "forks", match={"who": "parent"}) == 1
    assert stored(sqlite_db, "forks", match={"who": "child"}) == 1


def test_a_services_ingest_key_sends_its_samples_without_a_persons_token(sqlite_db, tokens, app):
    from mechanisms.core.context import Ctx
    from mechanisms.core.identity import system_principal
    from mechanisms.ops import alarms, ingest_keys

    with sqlite_db.transaction() as session:
        ctx = Ctx(session, system_principal("test"), SystemClock().now())
        alarms.create_service(ctx, "shop", "Shop", "payments")
        secret = ingest_keys.create(ctx, "shop", "sdk")[2]
    with (
        serving(app) as url,
        Metrics(url, ingest_key=secret, labels={"service": "shop"}, start=False) as metrics,
    ):
        metrics.counter("orders", 4)
        assert metrics.flush() is True and metrics.dropped["refused"] == 0
    assert stored(sqlite_db, "orders", match={"service": "shop"}) == 4
