"""`mech` commands that act through a Mechanisms server's HTTP API instead of opening the
database: what a CI job runs, holding an API token (``MECH_TOKEN``) and the server's
address (``MECH_URL``), never the database.

Every refusal becomes one clear line and exit 2, as the direct path's do: the server's
own message for a 4xx, a hint for a token it did not accept, the address for a server it
could not reach. Imports httpx and the CLI's output helpers only, so such a command starts
fast (no SQLAlchemy, FastAPI or service code)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer

from mechanisms import __version__
from mechanisms.core.cli_output import fail

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MECH_URL",
        help="Act through this Mechanisms server's API as MECH_TOKEN's user (what CI jobs "
        "do). Without it the command opens MECH_DATABASE_URL directly, on the server.",
    ),
]

TIMEOUT_SECONDS = 30.0

# Plain http carries the token in clear text; it is allowed to this machine only, unless
# the operator says the network in between is trusted.
INSECURE_OPT_IN = "MECH_ALLOW_PLAIN_HTTP"


def segment(value: str | int) -> str:
    """A value as one path segment of a URL, whatever characters it holds."""
    return quote(str(value), safe="")


class ApiClient:
    """One server, one token; each call returns the answer's JSON (or text) or exits."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": f"mech/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS)
        except httpx.InvalidURL:
            self._not_an_address()
        if token and _sends_token_in_clear(self._http.base_url):
            fail(
                f"--url/MECH_URL: {self.url} is plain http to another machine, which would send "
                f"the token in clear text; use https:// (or set {INSECURE_OPT_IN}=1 on a network "
                "you trust)"
            )

    def get(self, path: str, **params: Any) -> Any:
        return self._answer(self._send("GET", path, params=_present(params)))

    def text(self, path: str, **params: Any) -> str:
        return self._send("GET", path, params=_present(params)).text

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self._answer(self._send("POST", path, json=body, params=_present(params)))

    def post_or_refusal(self, path: str, body: Any, code: str) -> Any:
        """The answer, or the error body when the server refuses with ``code`` (a refusal the
        command reports as a failed check rather than as a usage error)."""
        return self._answer(self._send("POST", path, json=body, expected_refusal=code))

    def upload(self, path: str, data: bytes, media_type: str, **params: Any) -> Any:
        response = self._send(
            "POST",
            path,
            content=data,
            params=_present(params),
            headers={"Content-Type": media_type},
        )
        return self._answer(response)

    def put(self, path: str, body: Any) -> Any:
        return self._answer(self._send("PUT", path, json=body))

    def delete(self, path: str, **params: Any) -> Any:
        return self._answer(self._send("DELETE", path, params=_present(params)))

    def _send(
        self, method: str, path: str, *, expected_refusal: str | None = None, **options: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            self._not_an_address()
        except httpx.HTTPError as exc:
            fail(f"cannot reach the Mechanisms server at {self.url}: {exc}")
        if response.status_code >= 300 and (
            expected_refusal is None or _error_code(response) != expected_refusal
        ):
            self._refused(response)
        return response

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            path = response.request.url.path
            fail(f"{self.url} answered {path} without JSON: is it a Mechanisms server?")

    def _not_an_address(self) -> NoReturn:
        fail(f"--url/MECH_URL: {self.url!r} is not an http(s) address")

    def _refused(self, response: httpx.Response) -> NoReturn:
        message = _error_message(response)
        status = response.status_code
        if status == 401:
            fail(f"{message} (the server did not accept the token: check MECH_TOKEN or --token)")
        if status < 400:
            fail(
                f"{self.url} answered {status} (to {response.headers.get('location', '?')}): "
                "set MECH_URL to the server's address itself"
            )
        if status >= 500:
            fail(f"the server at {self.url} failed ({status}): {message}")
        fail(message)


def _sends_token_in_clear(url: httpx.URL) -> bool:
    if url.scheme != "http" or os.environ.get(INSECURE_OPT_IN) == "1":
        return False
    return not _is_this_machine(url.host)


def _is_this_machine(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _present(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the options left out (the server applies its defaults)."""
    return {k: _query_value(v) for k, v in params.items() if v is not None}


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()
