"""The SDK client: keeps the last known rule set, evaluates locally, reports exposures."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from mechanisms.flags.bucketing import BUCKETING_VERSION
from mechanisms.flags.domain import Engine, Evaluation, RuleSet

log = logging.getLogger("mechanisms.sdk")

EMPTY = RuleSet(environment="")
NO_CONTEXT: Mapping[str, Any] = {}
EXPOSURE_BATCH = 500


class FlagsClient:
    """Evaluates flags in-process. Between updates it keeps serving the last rule set it
    received, so a server that is down changes nothing for the application.

    ``mode``: "stream" (server-sent events, falling back to polling when the stream
    breaks), "poll" (ETag polling every ``poll_seconds``), or "offline" (only the rule
    set given as ``bootstrap``)."""

    def __init__(
        self,
        base_url: str = "",
        *,
        app: str = "",
        environment: str = "",
        token: str = "",
        mode: Literal["stream", "poll", "offline"] = "poll",
        poll_seconds: float = 30.0,
        bootstrap: RuleSet | Mapping[str, Any] | None = None,
        report_exposures: bool = True,
        timeout: float = 5.0,
        start: bool = True,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._app, self._environment = app, environment
        self._mode = mode
        self._poll_seconds = poll_seconds
        self._report_exposures = report_exposures and mode != "offline"
        self._etag: str | None = None
        self._engine = Engine(EMPTY)
        self._lock = threading.Lock()
        self._exposures: dict[tuple[str, str], str] = {}
        self._exposures_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(
            timeout=timeout, headers={"Authorization": f"Bearer {token}"} if token else {}
        )
        self.last_error: str | None = None
        if bootstrap is not None:
            self._install(
                bootstrap if isinstance(bootstrap, RuleSet) else RuleSet.model_validate(bootstrap),
                None,
            )
        if start and mode != "offline":
            self._spawn(
                self._stream_loop if mode == "stream" else self._poll_loop, "mech-sdk-updates"
            )
            if self._report_exposures:
                self._spawn(self._exposure_loop, "mech-sdk-exposures")

    # --- evaluation -------------------------------------------------------------

    def evaluate(
        self, key: str, context: Mapping[str, Any] | None = None, expected_type: str | None = None
    ) -> Evaluation:
        result = self._engine.evaluate(key, context or {}, expected_type)
        if self._report_exposures and result.variant is not None:
            target = (context or {}).get("targetingKey")
            if target is not None:
                self._record_exposure((key, str(target)), result.variant)
        return result

    def _record_exposure(self, seen: tuple[str, str], variant: str) -> None:
        # Unlocked read first: an exposure already buffered (the common case, the same
        # user again) costs no lock. If a flush swapped the buffer after that read, the
        # exposure is in the batch being sent (or put back when sending fails), so it is
        # still delivered. A new one is written under the lock the swap takes, so it
        # lands either in the batch a flush takes or in the buffer after it, never in a
        # batch already being read.
        if self._exposures.get(seen) == variant:
            return
        with self._exposures_lock:
            self._exposures[seen] = variant

    def _value(
        self, key: str, default: Any, context: Mapping[str, Any] | None, flag_type: str
    ) -> Any:
        if not self._report_exposures:
            return self._engine.value(key, context or NO_CONTEXT, flag_type, default)
        result = self.evaluate(key, context, flag_type)
        return default if result.is_error else result.value

    def boolean(self, key: str, default: bool, context: Mapping[str, Any] | None = None) -> bool:
        return self._value(key, default, context, "boolean")

    def string(self, key: str, default: str, context: Mapping[str, Any] | None = None) -> str:
        return self._value(key, default, context, "string")

    def number(self, key: str, default: float, context: Mapping[str, Any] | None = None) -> float:
        return self._value(key, default, context, "number")

    def object(
        self, key: str, default: dict[str, Any], context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._value(key, default, context, "object")

    def all(self, context: Mapping[str, Any] | None = None) -> dict[str, Evaluation]:
        return {r.key: r for r in self._engine.evaluate_all(context or {})}

    # --- the rule set -----------------------------------------------------------

    @property
    def ruleset(self) -> RuleSet:
        return self._engine.ruleset

    def wait_until_ready(self, timeout: float = 10.0) -> bool:
        """True once a rule set (bootstrap or from the server) is in place."""
        return self._ready.wait(timeout)

    def _install(self, ruleset: RuleSet, etag: str | None) -> None:
        if ruleset.bucketing_version != BUCKETING_VERSION:
            # Bucketing another way than the server would put people in other groups.
            raise ValueError(
                f"the rule set needs bucketing version {ruleset.bucketing_version}; this SDK has {BUCKETING_VERSION}"
            )
        engine = Engine(ruleset)
        with self._lock:
            self._engine, self._etag = engine, etag
        self._ready.set()

    def _url(self, suffix: str) -> str:
        return (
            f"{self._base}/api/v1/flags/apps/{self._app}/environments/{self._environment}/{suffix}"
        )

    def refresh(self) -> bool:
        """Fetch the rule set if it changed; True when a new one was installed. On any failure
        the previous rule set stays in place."""
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._http.get(self._url("ruleset"), headers=headers)
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: closed while polling
            self._note_error(f"cannot reach the server: {exc}")
            return False
        if response.status_code == 304:
            self.last_error = None
            self._ready.set()
            return False
        if response.status_code != 200:
            self._note_error(f"the server answered {response.status_code}: {response.text[:200]}")
            return False
        try:
            self._install(
                RuleSet.model_validate_json(response.content), response.headers.get("etag")
            )
        except ValueError as exc:
            self._note_error(f"refused the rule set: {exc}")
            return False
        self.last_error = None
        return True

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("flags SDK: %s; serving the last known rule set", message)
        self.last_error = message

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._poll_seconds)

    def _stream_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self._follow_stream()
                backoff = 1.0
            except (httpx.HTTPError, ValueError, RuntimeError) as exc:
                if self._stop.is_set():
                    return
                self._note_error(f"stream interrupted: {exc}")
            # Between stream attempts, a poll keeps the rule set fresh.
            self.refresh()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._poll_seconds)

    def _follow_stream(self) -> None:
        with self._http.stream(
            "GET", self._url("stream"), timeout=httpx.Timeout(5.0, read=60.0)
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"the stream answered {response.status_code}")
            event, data, event_id = "", [], None
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line == "":
                    if event == "ruleset" and data:
                        self._install(RuleSet.model_validate_json("\n".join(data)), event_id)
                        self.last_error = None
                    event, data, event_id = "", [], None
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line.startswith("id:"):
                    event_id = line[3:].strip()

    # --- exposures --------------------------------------------------------------

    def flush_exposures(self) -> int:
        """Send the exposures seen since the last flush; keep them if the server is down."""
        with self._exposures_lock:
            pending, self._exposures = self._exposures, {}
        if not pending:
            return 0
        items = [
            {"flag": flag, "targetingKey": key, "variant": variant}
            for (flag, key), variant in pending.items()
        ]
        sent = 0
        for start in range(0, len(items), EXPOSURE_BATCH):
            batch = items[start : start + EXPOSURE_BATCH]
            try:
                response = self._http.post(
                    self._url("exposures"),
                    content=json.dumps({"exposures": batch}),
                    headers={"content-type": "application/json"},
                )
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if not ok:
                with self._exposures_lock:
                    for item in items[start:]:
                        self._exposures.setdefault(
                            (item["flag"], item["targetingKey"]), item["variant"]
                        )
                break
            sent += len(batch)
        return sent

    def _exposure_loop(self) -> None:
        while not self._stop.wait(5.0):
            self.flush_exposures()

    # --- lifecycle --------------------------------------------------------------

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        if self._report_exposures:
            self.flush_exposures()
        # Closing the HTTP client also ends a stream that is waiting for its next event.
        self._http.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> FlagsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
