"""Cursor-paginated list queries for the API (SQLAlchemy Core, both engines).

A cursor is the last id of the previous page, base64url-encoded so clients treat it as
opaque; ordering by id keeps pages stable while rows are added.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, select

from partnerflow.web.api.errors import ApiError


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is malformed", "cursor") from None
    kind, _, value = text.partition(":")
    if kind != "id" or not value.isdigit() or len(value) > 12:
        raise ApiError(400, "invalid_cursor", "cursor is malformed", "cursor")
    return int(value)


def page(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    cursor: str | None,
    limit: int,
) -> tuple[list[Row[Any]], str | None]:
    after = decode_cursor(cursor)
    rows = list(
        conn.execute(
            select(table).where(*where, table.c.id > after).order_by(table.c.id).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None
