"""net revenue in the conversion rollups: recompute every day at the next fold

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 22:00:00

Report revenue became net of partial refunds (`amount - refunded`), like the commission
always was. The conversion rollup stores revenue per day, so the days folded before this
revision hold gross revenue. Deleting the conversions' high-water mark makes the next fold
(`partnerflow report refresh`, the background fold, or any `partnerflow report`, which
folds first) recompute every day of every program. The traffic rollups are unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM rollup_marks WHERE name = 'conversions'"))


def downgrade() -> None:
    # Derived data only: the older code folds net revenue into the days it recomputes, and
    # `partnerflow report refresh --rebuild` restores its own definition everywhere.
    pass
