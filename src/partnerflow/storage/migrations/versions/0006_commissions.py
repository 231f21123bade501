"""commissions: plan revisions and versions, ledger keys and rates, payouts, exchange rates

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-23 17:00:00

A branch from 0001 (other capabilities add their own branches); `upgrade heads` applies all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commission_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("txn_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("refund_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("fx_rate", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("fx_rate_date", sa.String(length=10), nullable=True))
    op.create_index(
        "uq_commission_entries_txn_key_bucket",
        "commission_entries",
        ["txn_key", "bucket"],
        unique=True,
    )
    op.create_table(
        "commission_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_commission_plans_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_commission_plans_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_plans")),
        sa.UniqueConstraint("program_id", "scope", "revision", name="uq_commission_plans_revision"),
    )
    op.create_table(
        "commission_plan_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_row_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_row_id"],
            ["commission_plans.id"],
            name=op.f("fk_commission_plan_versions_plan_row_id_commission_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_plan_versions")),
    )
    op.create_index(
        "ix_commission_plan_versions_row",
        "commission_plan_versions",
        ["plan_row_id"],
        unique=False,
    )
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=3), nullable=False),
        sa.Column("target", sa.String(length=3), nullable=False),
        sa.Column("valid_from", sa.String(length=10), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rates")),
        sa.UniqueConstraint("source", "target", "valid_from", name="uq_exchange_rates_pair_day"),
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        sa.Column("period_end", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_by", sa.String(length=200), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'paid', 'superseded')", name=op.f("ck_payout_batches_status")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_payout_batches_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
    )
    op.create_index(
        "ix_payout_batches_program", "payout_batches", ["program_id", "status"], unique=False
    )
    op.create_table(
        "payout_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("payment_key", sa.String(length=120), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_items_batch_id_payout_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_items")),
        sa.UniqueConstraint("payment_key", name="uq_payout_items_payment_key"),
    )
    op.create_index("ix_payout_items_batch", "payout_items", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_payout_items_batch", table_name="payout_items")
    op.drop_table("payout_items")
    op.drop_index("ix_payout_batches_program", table_name="payout_batches")
    op.drop_table("payout_batches")
    op.drop_table("exchange_rates")
    op.drop_index("ix_commission_plan_versions_row", table_name="commission_plan_versions")
    op.drop_table("commission_plan_versions")
    op.drop_table("commission_plans")
    op.drop_index("uq_commission_entries_txn_key_bucket", table_name="commission_entries")
    with op.batch_alter_table("commission_entries", schema=None) as batch_op:
        batch_op.drop_column("fx_rate_date")
        batch_op.drop_column("fx_rate")
        batch_op.drop_column("refund_micros")
        batch_op.drop_column("txn_key")
