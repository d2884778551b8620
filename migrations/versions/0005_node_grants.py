"""node grants: which other sites' studies a DICOM node may query and retrieve

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 06:49:12.853064
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_grants",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column(
            "granted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["dicom_nodes.id"],
            name=op.f("fk_node_grants_node_id_dicom_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_node_grants_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("node_id", "site_id", name=op.f("pk_node_grants")),
    )
    op.create_index(op.f("ix_node_grants_site_id"), "node_grants", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_node_grants_site_id"), table_name="node_grants")
    op.drop_table("node_grants")
