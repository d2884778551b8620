"""worklist indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 04:10:00.000000

The default worklist (``status IN ('ready', 'in_progress')``, the filter of
``GET /api/v1/worklist`` and of ``POST /api/v1/worklist/next``) ordered by
``due_at, priority, received_at, id``: with only ``(status, due_at, ...)`` indexes,
PostgreSQL cannot read two statuses in one ordered pass, so every page sorted the whole
visible backlog (tens of thousands of rows at network scale: 35-75 ms per page, see
``bench/README.md``). This partial index holds only the backlog, in worklist order, so a
page is an ordered index walk stopped by ``LIMIT``. ``site_id`` and ``status`` follow the
unique ``id`` only to be filtered inside the index (visibility by trust, a single status)
without visiting the table for rows that do not qualify.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_studies_backlog_order",
        "studies",
        ["due_at", "priority", "received_at", "id", "site_id", "status"],
        unique=False,
        postgresql_where=sa.text("status IN ('ready', 'in_progress')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_studies_backlog_order",
        table_name="studies",
        postgresql_where=sa.text("status IN ('ready', 'in_progress')"),
    )
