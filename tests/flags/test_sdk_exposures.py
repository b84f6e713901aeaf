"""The SDK's exposure buffer under concurrency: every exposure recorded while a flush swaps
the buffer is delivered, with eight threads evaluating at once."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mechanisms.flags.domain import RuleSet
from mechanisms.sdk import FlagsClient

THREADS = 8
EACH = 5000
ON = {
    "key": "checkout-v2",
    "type": "boolean",
    "salt": "s",
    "version": 1,
    "config": {
        "variants": {"on": True, "off": False},
        "off_variant": "off",
        "fallthrough": {"variant": "on"},
    },
}


@pytest.fixture
def exposure_server() -> Iterator[tuple[str, Counter]]:
    """A real HTTP server that accepts exposure batches and counts every exposure it got."""
    delivered: Counter = Counter()
    guard = threading.Lock()

    class Exposures(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with guard:
                delivered.update(
                    (e["flag"], e["targetingKey"], e["variant"]) for e in body["exposures"]
                )
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Exposures)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", delivered
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def threads_switch_often() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, so that evaluations land inside
    a flush's swap instead of around it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_every_exposure_recorded_during_flushes_is_delivered_once(
    exposure_server, threads_switch_often
):
    url, delivered = exposure_server
    client = FlagsClient(
        url,
        app="shop",
        environment="beta",
        bootstrap=RuleSet(environment="beta", flags={"checkout-v2": ON}),
        start=False,
    )
    evaluating = threading.Barrier(THREADS + 1)
    stop = threading.Event()
    flush_errors: list[BaseException] = []

    def evaluate(worker: int) -> None:
        evaluating.wait()
        for i in range(EACH):
            assert client.boolean("checkout-v2", False, {"targetingKey": f"u{worker}-{i}"})

    def flush_continuously() -> None:
        evaluating.wait()
        while not stop.is_set():
            try:
                client.flush_exposures()
            except BaseException as exc:  # a flush that dies mid-swap loses its batch
                flush_errors.append(exc)

    workers = [threading.Thread(target=evaluate, args=(w,)) for w in range(THREADS)]
    flusher = threading.Thread(target=flush_continuously)
    for thread in [*workers, flusher]:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    flusher.join()
    client.close()

    assert flush_errors == []
    expected = {("checkout-v2", f"u{w}-{i}", "on") for w in range(THREADS) for i in range(EACH)}
    assert set(delivered) == expected
    assert sum(delivered.values()) == THREADS * EACH
