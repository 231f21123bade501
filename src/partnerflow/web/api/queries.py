"""Cursor-paginated list queries for the API (SQLAlchemy Core, both engines).

A cursor is the last id of the previous page, base64url-encoded so clients treat it as
opaque; ordering by id keeps pages stable while rows are added.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Row, Table, select

from partnerflow.web.api.errors import ApiError

T = TypeVar("T")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind_wanted: str = "id") -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is malformed", "cursor") from None
    kind, _, value = text.partition(":")
    # ASCII digits only: `isdigit` also takes "²", which `int` refuses, and "٣".
    if kind != kind_wanted or not (value.isascii() and value.isdigit()) or len(value) > 12:
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


def page_items(items: Sequence[T], cursor: str | None, limit: int) -> tuple[list[T], str | None]:
    """A page of a list a use case computed in full (caps, batches, progress): the cursor is
    the offset, encoded like an id cursor. Such lists are short and ordered by the use
    case, so an offset is stable enough between two requests."""
    start = decode_cursor(cursor, "at")
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    token = base64.urlsafe_b64encode(f"at:{start + limit}".encode()).decode().rstrip("=")
    return chunk, token if more else None
