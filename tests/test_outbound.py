"""The outbound-request guard: which addresses it refuses, that it connects to the address
it checked, and that it follows no redirect."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mechanisms.core import outbound


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "169.254.169.254",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.100.100.200",  # shared address space (a cloud metadata service lives here)
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ],
)
def test_internal_addresses_in_every_form_are_not_public(address):
    assert not outbound.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are(address):
    assert outbound.is_public(ipaddress.ip_address(address))


class Server:
    """Records the Host header of each request; answers with a redirect to the metadata
    service."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N802, N805 - http.server's naming
                self.hosts.append(handler.headers["host"])
                handler.send_response(302)
                handler.send_header("location", "http://169.254.169.254/latest/meta-data/")
                handler.send_header("content-length", "0")
                handler.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_a_name_that_resolves_to_loopback_is_refused_at_fetch(server):
    with (
        outbound.client(5, outbound.Allowance()) as client,
        pytest.raises(outbound.RefusedDestination),
    ):
        client.get(f"http://localhost:{server.port}/")
    assert server.hosts == []


def test_an_allowed_name_is_reached_at_the_checked_address_once_and_not_redirected(
    server, monkeypatch
):
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding_dns(host, *args, **kwargs):  # the attacker's DNS: loopback once, then not
        if host == "rebind.example":
            answers.append(host)
            if len(answers) > 1:
                raise socket.gaierror("asked twice")
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    allow = outbound.Allowance.parse("127.0.0.1/32")
    with outbound.client(5, allow) as client:
        response = client.get(f"http://rebind.example:{server.port}/")
    assert response.status_code == 302, "the redirect is answered, not followed"
    assert answers == ["rebind.example"], "resolved once: the connection used that answer"
    assert server.hosts == [f"rebind.example:{server.port}"], "the name stays in Host"
