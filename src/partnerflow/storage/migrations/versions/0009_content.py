"""content: versioned terms and acceptances, creatives, resources

Revision ID: 0009
Revises: 0001
Create Date: 2026-11-26 10:00:00

A branch from 0001 (other capabilities add their own branches); `upgrade heads` applies all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terms_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('terms', 'guidelines')", name=op.f("ck_terms_documents_kind")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_terms_documents_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms_documents")),
        sa.UniqueConstraint("program_id", "kind", "version", name="uq_terms_documents_version"),
    )
    op.create_table(
        "terms_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("accepted_by", sa.String(length=320), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["terms_documents.id"],
            name=op.f("fk_terms_acceptances_document_id_terms_documents"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_terms_acceptances_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms_acceptances")),
        sa.UniqueConstraint(
            "document_id", "partner_id", name="uq_terms_acceptances_document_partner"
        ),
    )
    op.create_index(op.f("ix_terms_acceptances_partner_id"), "terms_acceptances", ["partner_id"])
    op.create_table(
        "creatives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('banner', 'product_image', 'social_post')", name=op.f("ck_creatives_kind")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_creatives_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_creatives")),
    )
    op.create_index(op.f("ix_creatives_program_id"), "creatives", ["program_id"])
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('guide', 'news', 'guidelines')", name=op.f("ck_resources_kind")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_resources_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
    )
    op.create_index(op.f("ix_resources_program_id"), "resources", ["program_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_resources_program_id"), table_name="resources")
    op.drop_table("resources")
    op.drop_index(op.f("ix_creatives_program_id"), table_name="creatives")
    op.drop_table("creatives")
    op.drop_index(op.f("ix_terms_acceptances_partner_id"), table_name="terms_acceptances")
    op.drop_table("terms_acceptances")
    op.drop_table("terms_documents")
