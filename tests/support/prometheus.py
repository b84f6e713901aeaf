"""The real Prometheus and Alertmanager from Debian's packages (``prometheus``,
``prometheus-alertmanager``), started by a test on free loopback ports with a config it
writes, and stopped after it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def require(binary: str | None, package: str) -> str:
    if binary is None:
        pytest.skip(f"needs Debian's {package} package (apt-get install {package})")
    return binary


@contextmanager
def _process(command: list[str], ready_url: str, log: Path, timeout: float = 30) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{command[0]} was not ready in {timeout}s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def prometheus(folder: Path, config: str, rules: str = "") -> Iterator[str]:
    """Prometheus with ``config`` (``RULES`` in it names the rule file); yields its URL."""
    binary = require(PROMETHEUS, "prometheus")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yml").write_text(rules or "groups: []\n")
    (folder / "prometheus.yml").write_text(config.replace("RULES", str(folder / "rules.yml")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with _process(command, f"{url}/-/ready", folder / "prometheus.log"):
        yield url


@contextmanager
def alertmanager(folder: Path, config: str) -> Iterator[str]:
    """Alertmanager with ``config``, clustering off; yields its URL."""
    binary = require(ALERTMANAGER, "prometheus-alertmanager")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(config)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        binary,
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    with _process(command, f"{url}/-/ready", folder / "alertmanager.log"):
        yield url
