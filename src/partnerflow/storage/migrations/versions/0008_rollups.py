"""rollups: daily report rollups, their high-water marks, and program revenue

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-24 16:00:00

A branch from 0001 (other capabilities add their own branches); `upgrade heads` applies all.
The rollups start empty: `partnerflow report refresh` (or the rollup job) fills them from
the event tables, so upgrading never rewrites history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None

_DIMENSIONS = ("program_id", "day", "partner_id", "offer_id", "link_id", "country", "device")


def _keys() -> list[sa.Column[object]]:
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


def upgrade() -> None:
    op.create_table(
        "rollup_traffic",
        *_keys(),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("unique_clicks", sa.BigInteger(), nullable=False),
        sa.Column("bot_clicks", sa.BigInteger(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_DIMENSIONS, "channel", name=op.f("pk_rollup_traffic")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_conversions",
        *_keys(),
        sa.Column("coupon_code", sa.String(length=64), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("refunds", sa.BigInteger(), nullable=False),
        sa.Column("sales", sa.BigInteger(), nullable=False),
        sa.Column("leads", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("sale_revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("commission_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            *_DIMENSIONS, "channel", "coupon_code", name=op.f("pk_rollup_conversions")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_marks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_marks")),
    )
    op.create_table(
        "program_revenue",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("revenue_micros", sa.BigInteger(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("orders >= 0", name=op.f("ck_program_revenue_orders_not_negative")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_program_revenue_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", "day", "source", name=op.f("pk_program_revenue")),
    )


def downgrade() -> None:
    op.drop_table("program_revenue")
    op.drop_table("rollup_marks")
    op.drop_table("rollup_conversions")
    op.drop_table("rollup_traffic")
