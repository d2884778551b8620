"""matching indexes

Revision ID: 0009_matching_indexes
Revises: 0008_accounts
Create Date: 2026-12-03 10:00:00.000000

What C-FIND and QIDO-RS match on most (``worklist.matching``), by index instead of a
scan of every patient or study: a patient's name without regard to case
(``lower(name)``: equality and a literal prefix such as ``SMITH*``, hence
``text_pattern_ops``, which serves LIKE whatever the database's collation), a local
patient ID (exact or prefix), and studies newest first (``study_datetime DESC NULLS
LAST, id DESC``: a StudyDate range is a range of it, and the default QIDO-RS study list
is an index walk stopped by ``LIMIT``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_matching_indexes"
down_revision: str | None = "0008_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_patients_name_lower",
        "patients",
        [sa.text("lower(name) text_pattern_ops")],
        unique=False,
    )
    op.create_index(
        "ix_patients_local_id",
        "patients",
        ["local_id"],
        unique=False,
        postgresql_ops={"local_id": "text_pattern_ops"},
    )
    op.create_index(
        "ix_studies_newest",
        "studies",
        [sa.text("study_datetime DESC NULLS LAST"), sa.text("id DESC")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_studies_newest", table_name="studies")
    op.drop_index("ix_patients_local_id", table_name="patients")
    op.drop_index("ix_patients_name_lower", table_name="patients")
