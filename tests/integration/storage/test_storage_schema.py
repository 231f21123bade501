"""The migrated schema matches the tables, on every backend, and upgrade is re-runnable."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from partnerflow.bootstrap import Services
from partnerflow.storage.tables import metadata


def test_migrations_create_every_table(services: Services) -> None:
    names = set(inspect(services.engine).get_table_names())
    assert set(metadata.tables) <= names
    assert "alembic_version" in names


def test_migrations_have_no_drift_from_tables(services: Services) -> None:
    with services.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_upgrade_twice_is_a_no_op(services: Services) -> None:
    services.migrate()
    services.migrate()
    assert "programs" in inspect(services.engine).get_table_names()
