"""Settings from the environment (prefix ``WORKLIST_``), as DESIGN lists them."""

from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from argon2.profiles import RFC_9106_LOW_MEMORY
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worklist import running
from worklist.enums import Priority

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DEFAULT_TURNAROUND = "stat=1h,urgent=4h,inpatient=24h,cancer_pathway=72h,routine=7d"
DEFAULT_ACK_DEADLINES = "critical=15m,urgent=4h,significant_unexpected=72h,cancer=72h"
ALERT_CATEGORIES = ("critical", "urgent", "significant_unexpected", "cancer")


class ConfigError(ValueError):
    """The configuration cannot be used as given."""


def parse_duration(text: str) -> timedelta:
    """Parse ``90``, ``30s``, ``15m``, ``4h``, ``7d`` or ``2w`` into a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"invalid duration {text!r} (use e.g. 30s, 15m, 4h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_duration_map(text: str, keys: tuple[str, ...]) -> dict[str, timedelta]:
    """Parse ``key=duration,...``; every key must be known and present."""
    result: dict[str, timedelta] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            raise ConfigError(f"invalid entry {part!r}: expected one of {', '.join(keys)}=DURATION")
        result[key] = parse_duration(value)
    missing = [k for k in keys if k not in result]
    if missing:
        raise ConfigError(f"missing durations for: {', '.join(missing)}")
    return result


DEFAULT_HL7_PRIORITY_MAP = "S=stat,A=urgent,R=routine"


def parse_priority_map(text: str) -> dict[str, Priority]:
    """Parse ``S=stat,A=urgent,R=routine`` (HL7 priority code to ours; codes upper-cased)."""
    result: dict[str, Priority] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, sep, value = part.partition("=")
        code, value = code.strip().upper(), value.strip()
        if not sep or not code or value not in tuple(Priority):
            raise ConfigError(
                f"invalid entry {part!r}: expected CODE=PRIORITY with PRIORITY one of "
                + ", ".join(Priority)
            )
        result[code] = Priority(value)
    if not result:
        raise ConfigError("the HL7 priority map is empty")
    return result


class Settings(BaseSettings):
    """Runtime configuration of every component."""

    model_config = SettingsConfigDict(env_prefix="WORKLIST_", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("./var")
    secret_key: str | None = Field(default=None, repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    gateway_ae_title: str = "IMAGING_NET"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 11112
    study_stable_seconds: float = 30.0
    claim_lease_seconds: float = 1800.0
    turnaround_targets: Annotated[dict[str, timedelta], NoDecode] = Field(
        default_factory=lambda: parse_duration_map(DEFAULT_TURNAROUND, tuple(Priority))
    )
    alert_ack_deadlines: Annotated[dict[str, timedelta], NoDecode] = Field(
        default_factory=lambda: parse_duration_map(DEFAULT_ACK_DEADLINES, ALERT_CATEGORIES)
    )
    # Orders from the trusts' RIS over HL7 v2 / MLLP (docs/ris.md).
    hl7_host: str = "127.0.0.1"
    hl7_port: int = 2575
    hl7_priority_map: Annotated[dict[str, Priority], NoDecode] = Field(
        default_factory=lambda: parse_priority_map(DEFAULT_HL7_PRIORITY_MAP)
    )
    # Results to the RIS (ORU^R01 over MLLP): connect, send and acknowledgement within this.
    ris_timeout_seconds: float = Field(default=10.0, gt=0)
    # Largest HL7 message the listener takes (AR above; never held whole in memory).
    hl7_max_message_bytes: int = Field(default=1_048_576, ge=4096)
    # A message begun but not finished within this is dropped with its connection (a slow
    # or stalled sender cannot hold a buffer for ever); idle between messages is fine.
    hl7_message_timeout_seconds: float = Field(default=60.0, gt=0)
    # Extensions (documented in the README).
    access_token_minutes: int = 480
    login_max_failures: int = 5
    login_failure_window_seconds: int = 300
    login_max_attempts_per_address: int = 30
    login_address_window_seconds: int = 60
    gateway_max_pdu: int = 0
    gateway_group_commit_max: int = 64
    gateway_processes: int = Field(default=1, ge=1, le=64)
    gateway_reuse_port: bool = False
    worker_interval_seconds: float = 1.0
    # Webhook delivery (Standard Webhooks) from the outbox.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_secret_overlap_seconds: float = Field(default=86400.0, ge=0)
    # Origins allowed to call the API from a browser (e.g. an OHIF viewer): comma-separated.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Redis is an accelerator, not a dependency of correctness: the API goes on without it
    # (logins unthrottled, no wake-ups) when it does not answer within this.
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    # Alert streams re-read the outbox this often when no Redis wake-up arrives.
    alert_stream_poll_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    # Webhook targets (SSRF): loopback/private/link-local targets only when allowed.
    webhook_allow_private: bool = False
    webhook_allowed_networks: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode
    ] = Field(default_factory=list)

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # The API's database pool (docs/performance.md): connections per process (as many again
    # may overflow), and how long a request waits for one before it is answered 503.
    api_db_pool_size: int = Field(default=10, ge=1, le=200)
    api_db_pool_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # Connections kept for raising and acknowledging alerts only, so worklist load never
    # sheds a critical result (docs/performance.md).
    api_db_reserved_pool_size: int = Field(default=3, ge=1, le=50)

    # Hardening against bad input and open endpoints (docs/hardening.md).
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    # When set, GET /metrics needs "Authorization: Bearer <token>"; unset: loopback clients only.
    metrics_token: str | None = Field(default=None, repr=False)

    # Accounts: login throttling across addresses (docs/accounts.md). The per-user limit
    # refuses only addresses the user has not logged in from within the known-address days;
    # WORKLIST_LOGIN_MAX_FAILURES / _FAILURE_WINDOW_SECONDS now count per (user, address).
    login_max_failures_per_user: int = Field(default=100, ge=1)
    login_user_window_seconds: int = Field(default=3600, ge=1)
    login_known_address_days: int = Field(default=30, ge=1)
    # Argon2id's cost for new password hashes (docs/accounts.md): argon2-cffi's defaults,
    # RFC 9106's low-memory profile. Existing hashes keep the cost they were made with.
    password_hash_time_cost: int = Field(default=RFC_9106_LOW_MEMORY.time_cost, ge=1)
    password_hash_memory_kib: int = Field(default=RFC_9106_LOW_MEMORY.memory_cost, ge=8)
    password_hash_parallelism: int = Field(default=RFC_9106_LOW_MEMORY.parallelism, ge=1)

    @field_validator("turnaround_targets", mode="before")
    @classmethod
    def _parse_turnaround(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration_map(value, tuple(Priority))
        return value

    @field_validator("hl7_priority_map", mode="before")
    @classmethod
    def _parse_hl7_priority(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_priority_map(value)
        return value

    @field_validator("alert_ack_deadlines", mode="before")
    @classmethod
    def _parse_ack(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration_map(value, ALERT_CATEGORIES)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _check_password_cost(self) -> Settings:
        if self.password_hash_memory_kib < 8 * self.password_hash_parallelism:
            raise ValueError("WORKLIST_PASSWORD_HASH_MEMORY_KIB must be at least 8 per lane")
        return self

    @field_validator("gateway_ae_title")
    @classmethod
    def _check_aet(cls, value: str) -> str:
        if not 0 < len(value) <= 16 or "\\" in value:
            raise ValueError("AE title must be 1-16 characters without backslash")
        return value

    @property
    def dicom_dir(self) -> Path:
        """Where stored instances live."""
        return self.data_dir / "dicom"

    @property
    def embedded(self) -> bool:
        """True when no database URL is configured (dev/embedded mode)."""
        return self.database_url is None

    def require_database_url(self) -> str:
        """The configured database URL, else the one `worklist up` runs for DATA_DIR."""
        if self.database_url:
            return self.database_url
        return self._embedded_url("database_url", "WORKLIST_DATABASE_URL", "PostgreSQL")

    def require_redis_url(self) -> str:
        """The configured Redis URL, else the one `worklist up` runs for DATA_DIR."""
        if self.redis_url:
            return self.redis_url
        return self._embedded_url("redis_url", "WORKLIST_REDIS_URL", "Redis")

    def _embedded_url(self, field: str, variable: str, what: str) -> str:
        try:
            services = running.read(self.data_dir)
        except running.NotRunning as exc:
            raise ConfigError(
                f"{variable} is not set and {exc}: start `worklist up` with the same "
                f"WORKLIST_DATA_DIR, or set {variable}"
            ) from exc
        url: str | None = getattr(services, field)
        if url is None:
            raise ConfigError(
                f"{variable} is not set and the running `worklist up` (pid {services.pid}) "
                f"uses an external {what}: set {variable} to it"
            )
        return url

    def resolved_secret_key(self) -> str:
        """The token signing key: configured, or generated and kept in DATA_DIR in dev mode."""
        if self.secret_key:
            if len(self.secret_key) < 32 or self.secret_key.lower() in {"changeme", "secret"}:
                raise ConfigError("WORKLIST_SECRET_KEY must be at least 32 random characters")
            return self.secret_key
        key_file = self.data_dir / "secret_key"
        if key_file.exists():
            return key_file.read_text().strip()
        if not self.embedded:
            raise ConfigError("WORKLIST_SECRET_KEY is required when WORKLIST_DATABASE_URL is set")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.touch(mode=0o600)
        key_file.write_text(key)
        return key
