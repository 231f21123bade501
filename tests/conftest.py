"""Shared fixtures: real SQLite files and, when configured, a real PostgreSQL and Redis.

`database_url` is parametrised: every test that uses it runs on SQLite and, when
PARTNERFLOW_TEST_POSTGRES_URL is set, on PostgreSQL too. Each test gets its own database:
empty, unless the test uses `services` (which migrates it): then a copy of a database the
session migrated once (SQLite: a file copy; PostgreSQL: `CREATE DATABASE .. TEMPLATE`, ~70
ms where running the migrations takes ~0.85 s, most of the suite's PostgreSQL time). Where
the server refuses CREATE DATABASE, PostgreSQL tests get a private schema instead. Under
pytest-xdist (`./scripts/test`) every worker is its own session, with its own templates;
names are random, so workers never share a database.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from partnerflow.bootstrap import Services, build
from partnerflow.config import Settings
from partnerflow.core.clock import FixedClock
from partnerflow.storage.database import make_test_engine, upgrade

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


def _migrate(url: str) -> None:
    engine = make_test_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _database_named(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session."""
    path = tmp_path_factory.mktemp("template") / "partnerflow.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[Engine | None]:
    if not POSTGRES_URL:
        yield None
        return
    admin = create_engine(_pg_admin_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_template(_postgres_admin: Engine | None) -> Iterator[str | None]:
    """The name of a PostgreSQL database migrated once per session; None where this server
    does not let us create databases."""
    if _postgres_admin is None or POSTGRES_URL is None:
        yield None
        return
    name = f"pf_template_{secrets.token_hex(6)}"
    try:
        with _postgres_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError:
        yield None
        return
    try:
        _migrate(_database_named(POSTGRES_URL, name))
        yield name
    finally:
        with _postgres_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    migrated = "services" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "partnerflow.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template: str | None = request.getfixturevalue("_postgres_template")
    admin: Engine | None = request.getfixturevalue("_postgres_admin")
    if template is None or admin is None or POSTGRES_URL is None:
        yield request.getfixturevalue("postgres_schema_url")
        return
    name = f"pf_test_{secrets.token_hex(6)}"
    source = f' TEMPLATE "{template}"' if migrated else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    try:
        yield _database_named(POSTGRES_URL, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
