"""the worklist page filtered by one site: that site's backlog in worklist order

Revision ID: 0014_site_backlog
Revises: 0013_demand_rollup
Create Date: 2026-12-04 20:30:00.000000

A worklist filtered by one site (``?site=RXK``: the site's id is a parameter of the
statement, ``studies.repository.filter_conditions``) walks this index in worklist order
and stops at the page's last row. Through the network-wide backlog index it examined
every other site's rows on the way: about 25 rows for each row shown for the smallest
site (6 ms of PostgreSQL CPU per page at 1M studies, 2.4 ms with this index;
bench/README.md, "Worklist benchmark").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_site_backlog"
down_revision: str | None = "0013_demand_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the site's backlog index."""
    op.create_index(
        "ix_studies_site_backlog_order",
        "studies",
        ["site_id", "due_at", "priority", "received_at", "id"],
        postgresql_where=sa.text("status IN ('ready', 'in_progress')"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_studies_site_backlog_order", table_name="studies")
