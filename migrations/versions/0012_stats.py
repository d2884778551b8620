"""network figures: indexes for turnaround, backlog, demand and flows

Revision ID: 0012_stats
Revises: 0011_pooled_workforce
Create Date: 2026-12-04 02:30:00.000000

The stats endpoints (``worklist.stats``) read studies by examination time
(the study date and time, else the first arrival), the unreported ones by examination
time with their site, priority and due time (index-only), studies by arrival, and final
reports by the time they were signed. The monthly extract (``worklist.stats.extract``)
reads a month by examination time and id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_stats"
down_revision: str | None = "0011_pooled_workforce"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXAMINED_AT = sa.text("coalesce(study_datetime, received_at)")


def upgrade() -> None:
    """Add the figures' indexes."""
    op.create_index("ix_studies_examined_at", "studies", [EXAMINED_AT, "id"])
    op.create_index(
        "ix_studies_unreported_examined_at",
        "studies",
        [EXAMINED_AT, "site_id", "priority", "due_at"],
        postgresql_where=sa.text("status IN ('ready', 'in_progress')"),
    )
    op.create_index("ix_studies_received_at", "studies", ["received_at"])
    op.create_index(
        "ix_reports_finalised_at",
        "reports",
        ["finalised_at"],
        postgresql_where=sa.text("finalised_at IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_reports_finalised_at", table_name="reports")
    op.drop_index("ix_studies_received_at", table_name="studies")
    op.drop_index("ix_studies_unreported_examined_at", table_name="studies")
    op.drop_index("ix_studies_examined_at", table_name="studies")
