"""tracking: refunded amount on conversions, customer-id lookup index

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refunded_micros", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_conversions_customer", ["program_id", "customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_index("ix_conversions_customer")
        batch_op.drop_column("refunded_micros")
