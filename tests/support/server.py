"""The real app (or any ASGI app) served by uvicorn on a free loopback port, for tests
that drive it with real HTTP clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (on ``port``, or a free one) in a thread; yields its base
    URL. ``options`` go to uvicorn (e.g. ``ssl_certfile`` and ``ssl_keyfile`` to serve HTTPS,
    ``access_log=True`` to log requests)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port or free_port(),
        **{
            "log_level": "warning",
            "access_log": False,
            # Streams and keep-alive connections a test left open would hold a graceful
            # shutdown for the whole join below.
            "timeout_graceful_shutdown": 1,
            **options,
        },
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # start-up prepares every route (about 2 s, more under load)
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        scheme = "https" if options.get("ssl_certfile") else "http"
        yield f"{scheme}://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
