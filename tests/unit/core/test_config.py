from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from partnerflow.config import DEFAULT_SECRET_KEY, Settings, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PARTNERFLOW_DATABASE_URL", "PARTNERFLOW_SECRET_KEY", "PARTNERFLOW_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./partnerflow.db"
    assert settings.redis_url is None
    assert settings.redis_prefix == "pf:"
    assert settings.uses_default_secret


def test_environment_overrides_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "partnerflow.toml"
    config.write_text(
        'database_url = "sqlite:///from-file.db"\npublic_base_url = "https://track.example.com/"\n'
    )
    monkeypatch.setenv("PARTNERFLOW_CONFIG_FILE", str(config))
    monkeypatch.setenv("PARTNERFLOW_DATABASE_URL", "sqlite:///from-env.db")
    settings = load_settings()
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.public_base_url == "https://track.example.com"


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNERFLOW_CONFIG_FILE", "/nonexistent/partnerflow.toml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("database_url", "mysql://x"),
        ("public_base_url", "ftp://x"),
        ("sqlite_synchronous", "OFF"),
        ("redis_prefix", ""),
        ("redis_prefix", "pf prod:"),  # a space (and below, glob and control characters)
        ("redis_prefix", "pf*:"),
        ("redis_prefix", "pf\n:"),
        ("redis_prefix", "p" * 65),
    ],
)
def test_invalid_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_redacted_hides_secrets_and_url_passwords() -> None:
    settings = Settings(
        database_url="postgresql://app:hunter2@db:5432/pf",
        redis_url="redis://:s3cret@cache:6379/0",
        secret_key="a-real-secret-value",
    )
    shown = settings.redacted()
    assert shown["secret_key"] == "***"
    assert shown["database_url"] == "postgresql://app:***@db:5432/pf"
    assert shown["redis_url"] == "redis://:***@cache:6379/0"
    assert "hunter2" not in repr(shown) and "s3cret" not in repr(shown)
    assert not settings.uses_default_secret
    assert DEFAULT_SECRET_KEY not in repr(shown)
