"""Settings come from the environment (``MECH_*``) so replicas share one configuration."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MECH_", extra="ignore")

    # A SQLite file in the working directory is the embedded default.
    database_url: str = "sqlite:///mech.db"
    # Requests larger than this are refused with 413 before they reach a handler.
    max_body_bytes: int = 1_000_000
    session_hours: int = 12
    # Set to false only when the UI is served over plain HTTP on a non-local address.
    secure_cookies: bool = False
    worker_tick_seconds: float = 1.0
    worker_batch: int = 100
    # How long a worker holds claimed work before another worker may take it over.
    worker_lease_seconds: float = 60.0
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 8
    # Hosts and networks (CIDR) the server may send requests to although they are not
    # public addresses, comma-separated: "127.0.0.1, 10.1.0.0/16, prometheus.internal".
    # Without them, Prometheus sources and webhooks never reach loopback, private,
    # link-local or metadata addresses (see mechanisms.core.outbound).
    outbound_allow: str = ""
    # Comma-separated module names imported at start-up; each may register
    # event subscribers and reconcilers (see mechanisms.core.plugins).
    plugins: str = ""
    # The ops metrics store: minute rollups older than this are folded into hourly ones,
    # and every rollup older than the retention is deleted (the worker's ops.retention job).
    metrics_minute_rollups_hours: int = Field(default=48, ge=1)
    metrics_retention_days: int = Field(default=90, ge=1)
    # Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed (the client address for sign-in throttling, HTTPS for
    # Secure cookies). Empty: the socket peer is the client and no header is believed.
    trusted_proxies: str = ""
    # The Ed25519 private key (PEM) that signs audit checkpoints: a file, or the key itself
    # in the environment. Never stored in the database, so rewriting the database cannot
    # forge a checkpoint.
    audit_signing_key_file: str = ""
    audit_signing_key: SecretStr = SecretStr("")
    # Where the worker appends a signed checkpoint of the audit head (JSON lines), and how
    # often; empty: no scheduled checkpoints.
    audit_checkpoint_file: str = ""
    audit_checkpoint_minutes: float = Field(default=60.0, gt=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()
