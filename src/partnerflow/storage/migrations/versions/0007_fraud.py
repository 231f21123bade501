"""fraud: review queue, per-program fraud policies, imported screening data

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-24 10:00:00

A branch from 0001 (other capabilities add their own branches); `upgrade heads` applies all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fraud_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scan_key", sa.String(length=96), nullable=True),
        sa.Column("reopened_from", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "subject_type IN ('click', 'conversion', 'partner')",
            name=op.f("ck_fraud_reviews_subject_type"),
        ),
        sa.CheckConstraint(
            "action IN ('flag', 'hold', 'reject', 'suspend')", name=op.f("ck_fraud_reviews_action")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'approved', 'rejected', 'reversed')",
            name=op.f("ck_fraud_reviews_status"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_fraud_reviews_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_fraud_reviews_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["reopened_from"],
            ["fraud_reviews.id"],
            name=op.f("fk_fraud_reviews_reopened_from_fraud_reviews"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_reviews")),
        sa.UniqueConstraint("scan_key", name=op.f("uq_fraud_reviews_scan_key")),
    )
    with op.batch_alter_table("fraud_reviews", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fraud_reviews_queue", ["program_id", "status", "action"], unique=False
        )
        batch_op.create_index(
            "ix_fraud_reviews_subject", ["subject_type", "subject_id"], unique=False
        )
        batch_op.create_index("ix_fraud_reviews_partner", ["partner_id", "status"], unique=False)

    op.create_table(
        "fraud_policies",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_fraud_policies_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_fraud_policies")),
    )

    op.create_table(
        "partner_screening_data",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("domain_age_days", sa.Integer(), nullable=True),
        sa.Column("backlinks", sa.Integer(), nullable=True),
        sa.Column("social_followers", sa.Integer(), nullable=True),
        sa.Column("engagement_rate", sa.String(length=32), nullable=True),
        sa.Column("review_rating", sa.String(length=32), nullable=True),
        sa.Column("audience_countries", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_screening_data_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partner_screening_data")),
    )


def downgrade() -> None:
    op.drop_table("partner_screening_data")
    op.drop_table("fraud_policies")
    with op.batch_alter_table("fraud_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_fraud_reviews_partner")
        batch_op.drop_index("ix_fraud_reviews_subject")
        batch_op.drop_index("ix_fraud_reviews_queue")
    op.drop_table("fraud_reviews")
