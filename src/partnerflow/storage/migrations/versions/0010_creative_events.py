"""creative events: `creative_id` on clicks and impressions, and in the rollup keys

Revision ID: 0010
Revises: 0008, 0009
Create Date: 2026-11-23 18:00:00

Merges the rollups (0008) and content (0009) branches: a click or impression names the
creative (`cr=` on the link) it came from, and reports can be grouped by creative.
Conversions get no column: they take their click's creative through `click_id`, the
way they already take its country, device and sub-IDs.

The rollup tables' primary keys gain `creative_id`, so they are recreated empty and their
high-water marks deleted. They are derived data: reports read the raw events for whatever
is not folded (here: everything) until the next `partnerflow report refresh` or
background fold folds every event again, so the numbers stay right in between.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = ("0008", "0009")
branch_labels = None
depends_on = None

_KEYS = ("program_id", "day", "partner_id", "offer_id", "link_id", "country", "device")


def _key_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("device", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
    ]


def _traffic_measures() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in ("clicks", "unique_clicks", "bot_clicks", "impressions")
    ]


def _conversion_measures() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in (
            "conversions",
            "refunds",
            "sales",
            "leads",
            "orders",
            "revenue_micros",
            "sale_revenue_micros",
            "commission_micros",
        )
    ]


def _create_rollups(with_creative: bool) -> None:
    def creative() -> list[sa.Column[object]]:
        return [sa.Column("creative_id", sa.Integer(), nullable=False)] if with_creative else []

    creative_key = ("creative_id",) if with_creative else ()
    op.create_table(
        "rollup_traffic",
        *_key_columns(),
        *creative(),
        *_traffic_measures(),
        sa.PrimaryKeyConstraint(*_KEYS, "channel", *creative_key, name=op.f("pk_rollup_traffic")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_conversions",
        *_key_columns(),
        sa.Column("coupon_code", sa.String(length=64), nullable=False),
        *creative(),
        *_conversion_measures(),
        sa.PrimaryKeyConstraint(
            *_KEYS, "channel", "coupon_code", *creative_key, name=op.f("pk_rollup_conversions")
        ),
        sqlite_with_rowid=False,
    )


def _refold_rollups(with_creative: bool) -> None:
    """Drop and recreate the (derived) rollup tables and forget how far they were folded."""
    op.drop_table("rollup_conversions")
    op.drop_table("rollup_traffic")
    _create_rollups(with_creative)
    op.execute(sa.text("DELETE FROM rollup_marks"))


def upgrade() -> None:
    op.add_column("clicks", sa.Column("creative_id", sa.Integer(), nullable=True))
    op.add_column("impressions", sa.Column("creative_id", sa.Integer(), nullable=True))
    _refold_rollups(with_creative=True)


def downgrade() -> None:
    _refold_rollups(with_creative=False)
    with op.batch_alter_table("impressions", schema=None) as batch_op:
        batch_op.drop_column("creative_id")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_column("creative_id")
