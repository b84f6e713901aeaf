"""Record metrics from Python: counters, gauges, observations and timers, buffered and
sent to the server's ingest endpoint (``POST /api/v1/ops/metrics``) in the background.

    from mechanisms.sdk import Metrics
    metrics = Metrics("http://mech.internal:8080", token=TOKEN, labels={"service": "checkout"})

The credential writes samples only for the services it may: a token of an engineer of the
service's owning team, or the service's ingest key (``ingest_key=``, made by a leader of
that team), which writes samples labelled with its own service and nothing else.

    @metrics.timer("checkout_latency_ms")
    def checkout(cart): ...

    with metrics.timer("db_query_ms", {"table": "orders"}):
        ...
    metrics.counter("orders", 1, {"country": "fr"})

Recording never blocks on the network and never raises because the server is away:
samples wait in a bounded buffer (the oldest go first when it is full, and are counted)
and are sent again with backoff. A batch the server refuses (a 4xx) is not sent again:
the samples it names are dropped and counted, the rest of the batch goes once more.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import math
import os
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx

log = logging.getLogger("mechanisms.sdk.metrics")

INGEST_PATH = "/api/v1/ops/metrics"
# The server's rules for names and labels (mechanisms.ops.metrics): checked when a sample
# is recorded, so one bad call fails where it is made instead of refusing a whole batch.
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")
DROPPED_METRIC = "mech_sdk_dropped_samples"
# Statuses that say "later", not "never": the batch is kept and sent again.
RETRY_STATUSES = frozenset({408, 425, 429})

Labels = Mapping[str, str]
# name, labels (sorted pairs), value, microseconds since the epoch
Pending = tuple[str, tuple[tuple[str, str], ...], float, int]
F = TypeVar("F", bound=Callable[..., Any])


def _check_labels(labels: Labels) -> tuple[tuple[str, str], ...]:
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_RE.match(key) or key.startswith("__"):
            raise ValueError(f"label name {key!r} is not valid")
        if not isinstance(value, str) or len(value) > 500 or "\x00" in value:
            raise ValueError(f"label {key} must be a string of at most 500 characters")
    return tuple(sorted(labels.items()))


def _epoch_us(at: float | datetime | None) -> int:
    if at is None:
        return time.time_ns() // 1000
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("at: give a timezone-aware datetime")
        return round(at.timestamp() * 1_000_000)
    return round(at * 1_000_000)


class Metrics:
    """A recorder: thread-safe, flushing in a background thread every ``flush_seconds``
    or as soon as ``batch_size`` samples wait, whichever comes first.

    ``labels`` are added to every sample (per-call labels win). ``max_buffer`` bounds the
    samples kept while the server cannot be reached. ``start=False`` sends only when
    ``flush()`` is called."""

    def __init__(
        self,
        base_url: str,
        token: str = "",
        *,
        ingest_key: str = "",
        labels: Labels | None = None,
        flush_seconds: float = 5.0,
        batch_size: int = 2000,
        max_buffer: int = 100_000,
        timeout: float = 5.0,
        max_backoff_seconds: float = 60.0,
        start: bool = True,
    ) -> None:
        if batch_size < 1 or max_buffer < batch_size:
            raise ValueError("batch_size must be at least 1 and at most max_buffer")
        self._url = base_url.rstrip("/") + INGEST_PATH
        self._token = token
        self._ingest_key = ingest_key
        self._labels = dict(_check_labels(labels or {}))
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._timeout = timeout
        self._max_backoff = max_backoff_seconds
        self._start = start
        self._closed = False
        self.dropped: dict[str, int] = {"overflow": 0, "refused": 0, "invalid": 0}
        self.sent = 0
        self.last_error: str | None = None
        self._logged: set[str] = set()
        self._reset()
        # Close (and so flush) at interpreter exit, without keeping the recorder alive.
        ref = weakref.ref(self)
        atexit.register(lambda: (m := ref()) is not None and m.close())

    def _reset(self) -> None:
        """Fresh state for this process: after a fork the child starts empty (the parent
        still sends what it recorded) with its own lock, connection and thread."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._buffer: deque[Pending] = deque()
        self._last_us: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._reported = dict(self.dropped)
        self._backoff = 0.0
        self._retry_at = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        headers = {"content-type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._ingest_key:
            headers["X-Mech-Ingest-Key"] = self._ingest_key
        self._http = httpx.Client(timeout=self._timeout, headers=headers)
        self._thread: threading.Thread | None = None
        if self._start:
            self._thread = threading.Thread(
                target=self._flush_loop, name="mech-sdk-metrics", daemon=True
            )
            self._thread.start()

    # --- recording ----------------------------------------------------------------

    def counter(
        self, name: str, value: float = 1.0, labels: Labels | None = None, *, at: Any = None
    ) -> None:
        """An increment: the store's ``sum`` over a period is the count for the period."""
        self._record(name, value, labels, at)

    def gauge(
        self, name: str, value: float, labels: Labels | None = None, *, at: Any = None
    ) -> None:
        """The current value of something (queue length, utilisation)."""
        self._record(name, value, labels, at)

    def observe(
        self, name: str, value: float, labels: Labels | None = None, *, at: Any = None
    ) -> None:
        """One observation of a distribution (a latency, a size): percentiles come from it."""
        self._record(name, value, labels, at)

    def timer(
        self, name: str, labels: Labels | None = None, *, unit: Literal["ms", "s"] = "ms"
    ) -> Timer:
        """Times a block (``with``/``async with``) or every call of a function (decorator,
        sync or async) and observes the duration in milliseconds (or seconds), also when
        the block raises."""
        return Timer(self, name, labels, unit)

    def _record(self, name: str, value: float, labels: Labels | None, at: Any) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"metric name {name!r} is not a valid Prometheus metric name")
        pairs = _check_labels({**self._labels, **labels} if labels else self._labels)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: the value must be a number, got {value!r}")
        if not math.isfinite(value):
            self._drop("invalid", 1, f"{name}: NaN and infinite values are not sent")
            return
        us = _epoch_us(at)
        if os.getpid() != self._pid:
            self._reset()
        with self._lock:
            series = (name, pairs)
            # Two different values of one series at the same microsecond make the server
            # refuse the batch (and two equal ones count once), so each series' samples
            # get distinct instants.
            last = self._last_us.get(series)
            if last is not None and -1_000_000 < us - last <= 0:
                us = last + 1
            self._last_us[series] = us
            self._buffer.append((name, pairs, float(value), us))
            overflow = len(self._buffer) - self._max_buffer
            for _ in range(max(0, overflow)):
                self._buffer.popleft()
            full = len(self._buffer) >= self._batch_size
        if overflow > 0:
            self._drop("overflow", overflow, "the buffer is full; dropping the oldest samples")
        if full:
            self._wake.set()

    # --- sending ------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> bool:
        """Send everything buffered now; True when nothing is left waiting."""
        if os.getpid() != self._pid:
            self._reset()
        with self._send_lock:
            first = True
            while True:
                batch = self._take(report_drops=first)
                if not batch:
                    return True
                if not self._send(batch):
                    return False
                first = False

    def _take(self, report_drops: bool) -> list[Pending]:
        """The next batch. Drop counts ride along with samples, or go alone once per flush
        (a refused batch adds to them: sending them alone after it would never end)."""
        with self._lock:
            count = min(self._batch_size, len(self._buffer))
            batch = [self._buffer.popleft() for _ in range(count)]
            if batch or report_drops:
                batch[:0] = self._drop_samples()
        return batch

    def _drop_samples(self) -> list[Pending]:
        """Drops not yet reported, as samples of their own metric (under the lock)."""
        now = time.time_ns() // 1000
        samples = []
        for reason, total in self.dropped.items():
            delta = total - self._reported[reason]
            if delta:
                labels = tuple(sorted({**self._labels, "reason": reason}.items()))
                samples.append((DROPPED_METRIC, labels, float(delta), now))
                self._reported[reason] = total
        return samples

    def _send(self, batch: list[Pending]) -> bool:
        """One batch; True when it is settled (stored, or refused for good)."""
        try:
            response = self._http.post(self._url, content=_body(batch))
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: client closed
            return self._retry_later(batch, f"cannot reach the server: {exc}")
        status = response.status_code
        if status < 300:
            self.sent += len(batch)
            self._backoff, self.last_error = 0.0, None
            return True
        if status >= 500 or status in RETRY_STATUSES:
            return self._retry_later(batch, f"the server answered {status}")
        if status == 413 and len(batch) > 1:
            # Too large for the server's body limit: the halves go again, first in line.
            self._requeue(batch)
            self._batch_size = max(1, len(batch) // 2)
            return True
        return self._refused(batch, response)

    def _refused(self, batch: list[Pending], response: httpx.Response) -> bool:
        """A 4xx: sending the same batch again would be refused again. The samples the
        server names are dropped; the others go once more, alone."""
        problems, message = _problems(response)
        named = {p["index"] for p in problems if isinstance(p.get("index"), int)}
        rest = [s for i, s in enumerate(batch) if i not in named]
        if named and len(named) == len(problems) and rest:
            self._drop(
                "refused", len(named), f"the server refused {len(named)} sample(s): {message}"
            )
            try:
                retried = self._http.post(self._url, content=_body(rest))
            except (httpx.HTTPError, RuntimeError) as exc:
                return self._retry_later(rest, f"cannot reach the server: {exc}")
            if retried.status_code < 300:
                self.sent += len(rest)
                return True
            if retried.status_code >= 500 or retried.status_code in RETRY_STATUSES:
                return self._retry_later(rest, f"the server answered {retried.status_code}")
            batch, message = rest, _problems(retried)[1]
        refused = sum(1 for s in batch if s[0] != DROPPED_METRIC)
        self._drop("refused", refused, f"the server refused a batch: {message}")
        return True

    def _retry_later(self, batch: list[Pending], why: str) -> bool:
        self._requeue(batch)
        self._backoff = min(self._max_backoff, max(0.5, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)
        if why != self.last_error:
            log.warning("metrics SDK: %s; keeping %d sample(s) to send again", why, self.pending)
        self.last_error = why
        return False

    def _requeue(self, batch: list[Pending]) -> None:
        # The drop counts in the batch are reported again with the next one instead.
        kept = [s for s in batch if s[0] != DROPPED_METRIC]
        with self._lock:
            for name, labels, value, _ in batch:
                if name == DROPPED_METRIC:
                    reason = dict(labels)["reason"]
                    self._reported[reason] -= int(value)
            self._buffer.extendleft(reversed(kept))
            overflow = len(self._buffer) - self._max_buffer
            for _ in range(max(0, overflow)):
                self._buffer.popleft()
        if overflow > 0:
            self._drop("overflow", overflow, "the buffer is full; dropping the oldest samples")

    def _drop(self, reason: str, count: int, message: str) -> None:
        with self._lock:
            self.dropped[reason] += count
        # One line per kind of problem, not one per batch: a server away for an hour
        # should not flood the application's log.
        key = f"{reason}:{message[:80]}"
        if key not in self._logged:
            self._logged.add(key)
            log.warning("metrics SDK: %s (counted in %s)", message, DROPPED_METRIC)

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self._retry_at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            self.flush()

    # --- lifecycle ----------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and try once more to send what is buffered."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and os.getpid() == self._pid:
            self._thread.join(timeout)
        self._http.timeout = httpx.Timeout(min(self._timeout, timeout))
        self.flush()
        self._http.close()

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Timer:
    """What ``Metrics.timer`` returns. As a context manager it times one block at a time
    (``elapsed_ms`` holds the last one); as a decorator it times each call on its own."""

    def __init__(
        self, metrics: Metrics, name: str, labels: Labels | None, unit: Literal["ms", "s"]
    ) -> None:
        if unit not in ("ms", "s"):
            raise ValueError("unit must be 'ms' or 's'")
        self._metrics, self._name, self._labels = metrics, name, labels
        self._scale = 1000.0 if unit == "ms" else 1.0
        self._started = 0.0
        self.elapsed_ms: float | None = None

    def _observe(self, started: float) -> None:
        seconds = time.perf_counter() - started
        self.elapsed_ms = seconds * 1000.0
        self._metrics.observe(self._name, seconds * self._scale, self._labels)

    def __enter__(self) -> Timer:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observe(self._started)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self._observe(started)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._observe(started)

        return timed  # type: ignore[return-value]


def _body(batch: list[Pending]) -> bytes:
    return json.dumps(
        {
            "samples": [
                {"name": name, "labels": dict(labels), "value": value, "timestamp": us / 1e6}
                for name, labels, value, us in batch
            ]
        }
    ).encode()


def _problems(response: httpx.Response) -> tuple[list[dict[str, Any]], str]:
    """The problems a refusal names ({"error": {"message", "details": {"problems"}}})."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return [], f"{response.status_code} {response.text[:200]}"
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    problems = details.get("problems") if not details.get("more") else None
    listed = [p for p in problems if isinstance(p, dict)] if isinstance(problems, list) else []
    return listed, f"{response.status_code} {error.get('message', '')}"[:300]
