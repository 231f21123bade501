"""Configuration: one pydantic-settings `Settings`, read from PARTNERFLOW_* environment
variables and, optionally, a TOML file named by PARTNERFLOW_CONFIG_FILE (environment wins).

No instance is created at import time: entry points call `load_settings()`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_SECRET_KEY = "partnerflow-insecure-default-secret-change-me"  # noqa: S105
_SECRET_FIELDS = {"secret_key", "smtp_password"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTNERFLOW_", extra="forbid")

    database_url: str = "sqlite:///./partnerflow.db"
    redis_url: str | None = None
    # Namespace of every Redis key (dedupe, velocity, caps): deployments sharing one Redis
    # database need different prefixes, and every tracker node of one deployment the same.
    redis_prefix: str = Field(default="pf:", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    public_base_url: str = "http://127.0.0.1:8000"
    # Demo mode allows the default secret and prints the seeded logins.
    demo: bool = False
    # Where the tracker spools events when the database is unreachable.
    spool_dir: Path = Path("./var/spool")
    # Group commit: largest batch (a batch is whatever arrived during the previous commit).
    writer_max_batch: int = Field(default=2000, ge=1, le=100_000)
    # SQLite durability: FULL fsyncs every group commit (safe against power loss);
    # NORMAL is safe against a killed process but not against power loss.
    sqlite_synchronous: str = "FULL"
    # SQLite FULL/EXTRA: fsync the tracker writer's WAL on a thread of its own, beside the
    # next batch (`storage.wal_sync`), instead of inside each commit: same durability, more
    # clicks per second on one core (docs/performance.md).
    sqlite_sync_thread: bool = True
    # The tracker writer's thread runs SCHED_BATCH on Linux (it does not preempt the event
    # loop when it wakes), falling back to normal scheduling while a busy neighbour holds
    # the core (`storage.scheduling`, docs/performance.md).
    writer_batch_scheduling: bool = True
    # Visitors' repeat clicks on the same link inside this window are not unique.
    unique_click_window_seconds: int = Field(default=86_400, ge=1)
    # Outgoing e-mail (password resets, announcements). Without smtp_host, mail is kept in
    # memory and logged: fine for a demo, never for production.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "partnerflow@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    # Webhooks and partner postbacks never go to private or loopback addresses (SSRF),
    # unless this is set (tests, or an intranet deployment that needs it).
    allow_private_webhook_targets: bool = False
    # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDR ranges).
    trusted_proxies: tuple[str, ...] = ()
    config_file: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync(cls, value: str) -> str:
        if value.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError("sqlite_synchronous must be FULL, EXTRA or NORMAL")
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("PARTNERFLOW_CONFIG_FILE")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @property
    def uses_default_secret(self) -> bool:
        return self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY

    def redacted(self) -> dict[str, Any]:
        """Every setting, secrets and URL passwords replaced by '***'."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRET_FIELDS:
                out[name] = None if value is None else "***"
            elif isinstance(value, str) and "://" in value:
                out[name] = _redact_url(value)
            elif isinstance(value, Path):
                out[name] = str(value)
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out


def _redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _password = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings; a missing or malformed TOML file raises a clear error."""
    toml_path = os.environ.get("PARTNERFLOW_CONFIG_FILE")
    if toml_path and not Path(toml_path).is_file():
        raise FileNotFoundError(f"PARTNERFLOW_CONFIG_FILE={toml_path} does not exist")
    return Settings(**overrides)
