"""Shared fixtures: real SQLite files and, when configured, a real PostgreSQL and Redis.

`database_url` is parametrised: every test that uses it runs on SQLite and, when
PARTNERFLOW_TEST_POSTGRES_URL is set, on PostgreSQL too (each test in its own schema).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock

POSTGRES_URL = os.environ.get("PARTNERFLOW_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("PARTNERFLOW_TEST_REDIS_URL")

_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="PARTNERFLOW_TEST_POSTGRES_URL not set"),
        ],
    ),
]


def _pg_admin_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.skip("PARTNERFLOW_TEST_POSTGRES_URL not set")
    schema = f"pf_test_{secrets.token_hex(6)}"
    admin = create_engine(_pg_admin_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'partnerflow.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'partnerflow.db'}"


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("PARTNERFLOW_TEST_REDIS_URL not set")
    return REDIS_URL


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, spool_dir=tmp_path / "spool")


@pytest.fixture
def services(settings: Settings, clock: FixedClock) -> Iterator[Services]:
    svc = build(settings, clock=clock)
    svc.migrate()
    try:
        yield svc
    finally:
        svc.close()
