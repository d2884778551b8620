"""demographics: flag a study whose patient demographics differ from its patient's

Revision ID: 0007_demographics
Revises: 0006
Create Date: 2026-12-02 16:30:00.000000

A second study under the same local patient ID but another name, birth date or sex was
shown under the first name without a word. ``index_instances`` v3
(``worklist/studies/sql/index_instances_v3.sql``) keeps the patient row's demographics,
records on the study what its instances carried and flags it ``demographic_mismatch``
(audited). It also writes the gateway's audit rows with the actor kind every other DICOM
node row has (``node``, not ``dicom_node``); existing rows are respelled.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worklist.studies.sql import read_sql

revision: str = "0007_demographics"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("received_patient_name", sa.Text(), nullable=True))
    op.add_column("studies", sa.Column("received_patient_birth_date", sa.Date(), nullable=True))
    op.add_column("studies", sa.Column("received_patient_sex", sa.String(length=16), nullable=True))
    op.execute(read_sql("index_instances_v3"))
    op.execute("UPDATE audit_log SET actor_kind = 'node' WHERE actor_kind = 'dicom_node'")


def downgrade() -> None:
    op.execute(read_sql("index_instances_v2"))
    op.execute("UPDATE audit_log SET actor_kind = 'dicom_node' WHERE actor_kind = 'node'")
    op.execute("DROP FUNCTION IF EXISTS patient_name_key(text)")
    op.drop_column("studies", "received_patient_sex")
    op.drop_column("studies", "received_patient_birth_date")
    op.drop_column("studies", "received_patient_name")
