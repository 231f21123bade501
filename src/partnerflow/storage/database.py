"""Engines for SQLite (WAL) and PostgreSQL, and the schema upgrade entry point."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
READ_ONLY_OPTION = "partnerflow_read_only"


def _null(value: None) -> None:
    return value


# Binding None. For every parameter that is not exactly an int, float, str or bytearray, the
# sqlite3 module looks for an adapter: for None it finds none in its registry, then asks its
# PrepareProtocol type for `__adapt__`, which raises and formats an AttributeError that is
# cleared at once. A click row binds 6-10 NULLs (empty sub-ids, referrer, flags, creative):
# perf put that lookup at ~5% of the tracker's CPU per click. A registered adapter is found
# in the registry first; it hands None back unchanged, so NULL is stored as before (for
# every SQLite connection of the process: the registry is the module's).
sqlite3.register_adapter(type(None), _null)


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 for us."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def make_engine(url: str, *, synchronous: str = "FULL", **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is off), and make
            # every connection WAL with the configured durability.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers queue instead of one
            # failing with 'database is locked' when it upgrades a read lock. Connections
            # opened with `read_only_connection` start a deferred transaction instead: in WAL
            # mode they read a snapshot and never hold up the tracker's writer.
            if conn.get_execution_options().get(READ_ONLY_OPTION):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def read_only_connection(engine: Engine) -> Connection:
    """A connection for queries that never write (pages, reports). On SQLite it does not take
    the write lock; on PostgreSQL it is an ordinary connection."""
    return engine.connect().execution_options(**{READ_ONLY_OPTION: True})


def make_test_engine(url: str) -> Engine:
    """An engine without pooling, for tests that create and drop databases."""
    return make_engine(url, poolclass=NullPool)


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply Alembic migrations up to `revision`."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def alembic_config(engine: Engine) -> Any:
    """Alembic config for our migrations; the connection is handed in, not a URL."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg
