"""Storage adapters: SQLAlchemy tables and repositories, Alembic migrations, Redis counters.

Invariants: one schema for SQLite (WAL) and PostgreSQL; money is stored as BIGINT
micro-units (`*_micros`) next to its currency so SQL sums stay exact on every engine;
timestamps are UTC; conversions are unique on (program_id, order_id); ledger rows are
only ever inserted.
"""
