"""caps: cap rules, usage counters, reservations, changes, alerts, partner notices, goals,
partner targets and their achievements, ad spend

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23 16:30:00

A branch from 0001 (other capabilities add their own branches); `upgrade heads` applies all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("limit_units", sa.BigInteger(), nullable=False),
        sa.Column("alert_thresholds", sa.JSON(), nullable=False),
        sa.Column("adaptive", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("scope_key", sa.String(length=96), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("limit_units >= 0", name=op.f("ck_caps_limit_not_negative")),
        sa.CheckConstraint(
            "offer_id IS NOT NULL OR partner_id IS NOT NULL", name=op.f("ck_caps_has_scope")
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_caps_offer_id_offers")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_caps_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_caps_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caps")),
        sa.UniqueConstraint("program_id", "scope_key", name="uq_caps_program_scope_key"),
    )
    with op.batch_alter_table("caps", schema=None) as batch_op:
        batch_op.create_index("ix_caps_program", ["program_id"], unique=False)

    op.create_table(
        "cap_usage",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("cap_id", sa.Integer(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cap_usage")),
    )
    with op.batch_alter_table("cap_usage", schema=None) as batch_op:
        batch_op.create_index("ix_cap_usage_cap", ["cap_id"], unique=False)

    op.create_table(
        "cap_reservations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("charges", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_reservations")),
    )
    with op.batch_alter_table("cap_reservations", schema=None) as batch_op:
        batch_op.create_index("ix_cap_reservations_expires", ["expires_at"], unique=False)

    op.create_table(
        "cap_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cap_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("old_limit_units", sa.BigInteger(), nullable=True),
        sa.Column("new_limit_units", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["cap_id"], ["caps.id"], name=op.f("fk_cap_changes_cap_id_caps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_changes")),
        sa.UniqueConstraint("cap_id", "run_key", name="uq_cap_changes_cap_run"),
    )
    with op.batch_alter_table("cap_changes", schema=None) as batch_op:
        batch_op.create_index("ix_cap_changes_cap_at", ["cap_id", "at"], unique=False)

    op.create_table(
        "cap_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cap_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.String(length=8), nullable=False),
        sa.Column("used_units", sa.BigInteger(), nullable=False),
        sa.Column("limit_units", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cap_id"], ["caps.id"], name=op.f("fk_cap_alerts_cap_id_caps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_alerts")),
        sa.UniqueConstraint("cap_id", "period_key", "threshold", name="uq_cap_alerts_once"),
    )

    op.create_table(
        "cap_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_cap_notices_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_cap_notices_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_notices")),
        sa.UniqueConstraint("kind", "ref", "partner_id", name="uq_cap_notices_once"),
    )
    with op.batch_alter_table("cap_notices", schema=None) as batch_op:
        batch_op.create_index("ix_cap_notices_partner", ["partner_id", "status"], unique=False)

    op.create_table(
        "goals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("target_units", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("target_units >= 0", name=op.f("ck_goals_target_not_negative")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_goals_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goals")),
        sa.UniqueConstraint(
            "program_id", "metric", "period", "period_key", name="uq_goals_identity"
        ),
    )

    op.create_table(
        "partner_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target_units", sa.BigInteger(), nullable=True),
        sa.Column("growth_percent", sa.String(length=16), nullable=True),
        sa.Column("bonus_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('absolute', 'growth')", name=op.f("ck_partner_targets_kind")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_targets_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_partner_targets_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_targets")),
        sa.UniqueConstraint(
            "partner_id", "metric", "period", "period_key", name="uq_partner_targets_identity"
        ),
    )

    op.create_table(
        "target_achievements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("actual_units", sa.BigInteger(), nullable=False),
        sa.Column("target_units", sa.BigInteger(), nullable=False),
        sa.Column("met_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["partner_targets.id"],
            name=op.f("fk_target_achievements_target_id_partner_targets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_achievements")),
        sa.UniqueConstraint("target_id", "period_key", name="uq_target_achievements_once"),
    )

    op.create_table(
        "ad_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("campaign", sa.String(length=128), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_micros >= 0", name=op.f("ck_ad_spend_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_ad_spend_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_ad_spend_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_spend")),
    )
    with op.batch_alter_table("ad_spend", schema=None) as batch_op:
        batch_op.create_index("ix_ad_spend_program_day", ["program_id", "day"], unique=False)


def downgrade() -> None:
    op.drop_table("ad_spend")
    op.drop_table("target_achievements")
    op.drop_table("partner_targets")
    op.drop_table("goals")
    op.drop_table("cap_notices")
    op.drop_table("cap_alerts")
    op.drop_table("cap_changes")
    op.drop_table("cap_reservations")
    op.drop_table("cap_usage")
    op.drop_table("caps")
