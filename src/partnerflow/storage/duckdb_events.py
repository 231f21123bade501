"""DuckDB over the raw events: heavy ad-hoc analysis (sub-ID x country breakdowns, any
dimension the rollups do not keep) in an in-process columnar engine.

Only what the `duckdb` wheel bundles is used — no extension is installed at run time. The
wheel does not bundle the SQLite or PostgreSQL scanners, so events are copied in:
- from SQLite through the DBAPI cursor, in chunks, as Arrow record batches (pyarrow);
- from PostgreSQL with `COPY (SELECT ...) TO STDOUT (FORMAT csv)` into a temporary file
  that DuckDB's CSV reader loads.
Timestamps travel as integer epoch seconds, so no timezone conversion happens in transit;
local days are assigned by `rollup_grain` exactly as for the rollups, so a DuckDB report
equals a raw SQL report and a rollup report for the same events.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, Self

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]
from sqlalchemy import Connection

from partnerflow.storage.reports import EARNING_KINDS, local_day_bounds
from partnerflow.storage.rollup_grain import (
    CONVERSION_MEASURES,
    NO_FILTERS,
    TRAFFIC_MEASURES,
    Filters,
    GrainBuilder,
    group_measures,
    merge_measures,
)

_SUBS = ", ".join(f"c.sub{i}" for i in range(1, 6))
# (name, DuckDB type, SQLite expression, PostgreSQL expression)
_EPOCH_SQLITE = "CAST(strftime('%s', {col}) AS INTEGER)"
_EPOCH_PG = "CAST(floor(extract(epoch FROM {col})) AS BIGINT)"

_TABLES: dict[str, tuple[tuple[str, str], str]] = {
    "clicks": (
        (
            ("ts", "BIGINT"),
            ("program_id", "INTEGER"),
            ("partner_id", "INTEGER"),
            ("offer_id", "INTEGER"),
            ("link_id", "INTEGER"),
            ("country", "VARCHAR"),
            ("device", "VARCHAR"),
            ("referrer", "VARCHAR"),
            ("sub1", "VARCHAR"),
            ("sub2", "VARCHAR"),
            ("sub3", "VARCHAR"),
            ("sub4", "VARCHAR"),
            ("sub5", "VARCHAR"),
            ("is_unique", "BOOLEAN"),
            ("is_bot", "BOOLEAN"),
            ("creative_id", "INTEGER"),
        ),  # type: ignore[dict-item]
        "SELECT {ts}, c.program_id, c.partner_id, c.offer_id, c.link_id, c.country, c.device,"
        f" c.referrer, {_SUBS}, c.is_unique, c.is_bot, COALESCE(c.creative_id, 0) FROM clicks c"
        " WHERE c.program_id = {pid} AND c.created_at >= {start} AND c.created_at < {end}",
    ),
    "impressions": (
        (
            ("ts", "BIGINT"),
            ("program_id", "INTEGER"),
            ("partner_id", "INTEGER"),
            ("offer_id", "INTEGER"),
            ("link_id", "INTEGER"),
            ("is_bot", "BOOLEAN"),
            ("creative_id", "INTEGER"),
        ),  # type: ignore[dict-item]
        "SELECT {ts}, c.program_id, c.partner_id, c.offer_id, c.link_id, c.is_bot,"
        " COALESCE(c.creative_id, 0) FROM impressions c"
        " WHERE c.program_id = {pid} AND c.created_at >= {start} AND c.created_at < {end}",
    ),
    "conversions": (
        (
            ("id", "BIGINT"),
            ("ts", "BIGINT"),
            ("program_id", "INTEGER"),
            ("partner_id", "INTEGER"),
            ("offer_id", "INTEGER"),
            ("link_id", "INTEGER"),
            ("country", "VARCHAR"),
            ("device", "VARCHAR"),
            ("referrer", "VARCHAR"),
            ("coupon_code", "VARCHAR"),
            ("attributed_by", "VARCHAR"),
            ("sub1", "VARCHAR"),
            ("sub2", "VARCHAR"),
            ("sub3", "VARCHAR"),
            ("sub4", "VARCHAR"),
            ("sub5", "VARCHAR"),
            ("event_type", "VARCHAR"),
            ("status", "VARCHAR"),
            ("currency", "VARCHAR"),
            ("amount_micros", "BIGINT"),
            ("creative_id", "INTEGER"),
            ("refunded_micros", "BIGINT"),
        ),  # type: ignore[dict-item]
        "SELECT v.id, {vts}, v.program_id, v.partner_id, COALESCE(v.offer_id, 0),"
        " COALESCE(c.link_id, 0), c.country, c.device, c.referrer, v.coupon_code,"
        f" v.attributed_by, {_SUBS}, v.event_type, v.status, v.currency, v.amount_micros,"
        " COALESCE(c.creative_id, 0), v.refunded_micros"
        " FROM conversions v LEFT JOIN clicks c ON c.id = v.click_id"
        " WHERE v.program_id = {pid} AND v.created_at >= {start} AND v.created_at < {end}"
        " AND v.partner_id IS NOT NULL AND v.status <> 'rejected'",
    ),
    "ledger": (
        (("conversion_id", "BIGINT"), ("currency", "VARCHAR"), ("amount_micros", "BIGINT")),  # type: ignore[dict-item]
        "SELECT e.conversion_id, e.currency, SUM(e.amount_micros) FROM commission_entries e"
        " JOIN conversions v ON v.id = e.conversion_id"
        " WHERE v.program_id = {pid} AND v.created_at >= {start} AND v.created_at < {end}"
        " AND v.partner_id IS NOT NULL AND v.status <> 'rejected'"
        " AND e.kind IN ({kinds}) GROUP BY e.conversion_id, e.currency",
    ),
}
_CHUNK = 100_000


class DuckDBEvents:
    """The raw events of one program and period, copied into an in-memory DuckDB."""

    def __init__(self, duck: duckdb.DuckDBPyConnection) -> None:
        self.duck = duck

    @classmethod
    @contextmanager
    def load(
        cls, conn: Connection, program_id: int, first_day: date, last_day: date, timezone: str
    ) -> Iterator[Self]:
        start, end = local_day_bounds(first_day, last_day, timezone)
        duck = duckdb.connect(":memory:")
        try:
            sqlite = conn.dialect.name == "sqlite"
            for name, (columns, template) in _TABLES.items():
                epoch = _EPOCH_SQLITE if sqlite else _EPOCH_PG
                if sqlite:
                    bounds = {"start": "?", "end": "?"}
                    args: tuple[Any, ...] = (_sqlite_ts(start), _sqlite_ts(end))
                else:
                    bounds = {"start": f"'{start.isoformat()}'", "end": f"'{end.isoformat()}'"}
                    args = ()
                sql = template.format(
                    ts=epoch.format(col="c.created_at"),
                    vts=epoch.format(col="v.created_at"),
                    pid=int(program_id),
                    kinds=", ".join(f"'{k}'" for k in EARNING_KINDS),
                    **bounds,
                )
                if sqlite:
                    _load_sqlite(conn, duck, name, columns, sql, args)
                else:
                    _load_postgres(conn, duck, name, columns, sql)
            yield cls(duck)
        finally:
            duck.close()

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run an ad-hoc query over the loaded tables (clicks, impressions, conversions,
        ledger); timestamps are `ts` epoch seconds."""
        return self.duck.execute(query, params or []).fetchall()

    def measures(
        self,
        grain: GrainBuilder,
        dimension: str,
        filters: Filters = NO_FILTERS,
        first_day: date | None = None,
        last_day: date | None = None,
    ) -> dict[Any, dict[str, int]]:
        """Report groups, the same as `storage.rollups.raw_measures` computes in SQL."""
        extra = dimension if dimension.startswith("sub") else "''"
        extra_c = f"COALESCE(c.{extra}, '')" if extra != "''" else "''"
        grain.add_clicks(
            self.sql(
                "SELECT program_id, ts // 900 AS b, partner_id, offer_id, link_id,"
                " COALESCE(country, ''), COALESCE(device, ''), COALESCE(referrer, ''),"
                f" {extra_c.replace('c.', '')}, creative_id,"
                " SUM(CASE WHEN NOT is_bot THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN NOT is_bot AND is_unique THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN is_bot THEN 1 ELSE 0 END)"
                " FROM clicks GROUP BY ALL"
            )
        )
        grain.add_impressions(
            self.sql(
                "SELECT program_id, ts // 900, partner_id, offer_id, link_id, creative_id,"
                " COUNT(*)"
                " FROM impressions WHERE NOT is_bot GROUP BY ALL"
            )
        )
        dims = (
            "v.program_id, v.ts // 900, v.partner_id, v.offer_id, v.link_id,"
            " COALESCE(v.country, ''), COALESCE(v.device, ''), COALESCE(v.referrer, ''),"
            " COALESCE(v.coupon_code, ''), v.attributed_by,"
            f" {extra_c.replace('c.', 'v.')}, v.creative_id"
        )
        grain.add_conversions(
            self.sql(
                f"SELECT {dims}, v.event_type, v.status, v.currency, COUNT(*),"
                " SUM(v.amount_micros - v.refunded_micros) FROM conversions v GROUP BY ALL"
            )
        )
        grain.add_ledger(
            self.sql(
                f"SELECT {dims}, e.currency, SUM(e.amount_micros) FROM ledger e"
                " JOIN conversions v ON v.id = e.conversion_id GROUP BY ALL"
            )
        )
        return merge_measures(
            group_measures(
                grain.traffic, TRAFFIC_MEASURES, dimension, filters, first_day, last_day
            ),
            group_measures(
                grain.conversions, CONVERSION_MEASURES, dimension, filters, first_day, last_day
            ),
        )


def _sqlite_ts(moment: Any) -> str:
    return str(moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"))


def _create(duck: duckdb.DuckDBPyConnection, name: str, columns: Any) -> None:
    cols = ", ".join(f"{n} {t}" for n, t in columns)
    duck.execute(f"CREATE TABLE {name} ({cols})")


def _arrow_type(duck_type: str) -> pa.DataType:
    return {"BIGINT": pa.int64(), "INTEGER": pa.int32(), "BOOLEAN": pa.bool_()}.get(
        duck_type, pa.string()
    )


def _load_sqlite(
    conn: Connection,
    duck: duckdb.DuckDBPyConnection,
    name: str,
    columns: Any,
    sql: str,
    args: tuple[Any, ...],
) -> None:
    _create(duck, name, columns)
    schema = pa.schema([(n, _arrow_type(t)) for n, t in columns])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, args)
        while True:
            rows = cursor.fetchmany(_CHUNK)
            if not rows:
                break
            arrays = [
                pa.array([bool(x) if x is not None else None for x in col], pa.bool_())
                if schema.field(i).type == pa.bool_()
                else pa.array(col, schema.field(i).type)
                for i, col in enumerate(zip(*rows, strict=True))
            ]
            batch = pa.Table.from_arrays(arrays, schema=schema)  # noqa: F841 - read by DuckDB
            duck.execute(f"INSERT INTO {name} SELECT * FROM batch")
    finally:
        cursor.close()


def _load_postgres(
    conn: Connection, duck: duckdb.DuckDBPyConnection, name: str, columns: Any, sql: str
) -> None:
    _create(duck, name, columns)
    driver: Any = conn.connection.driver_connection
    handle, path = tempfile.mkstemp(suffix=".csv")
    try:
        with (
            os.fdopen(handle, "wb") as out,
            driver.cursor() as cursor,
            cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy,
        ):
            for chunk in copy:
                out.write(chunk)
        if os.path.getsize(path) == 0:
            return
        types = {n: t for n, t in columns}
        # COPY's CSV writes NULL as an empty unquoted field and '' as "" (quoted), which is
        # exactly how DuckDB reads them back with nullstr ''.
        duck.execute(
            f"INSERT INTO {name} SELECT * FROM read_csv(?, header = false, columns = ?,"
            " delim = ',', quote = '\"', escape = '\"', nullstr = '', auto_detect = false)",
            [path, types],
        )
    finally:
        os.unlink(path)
