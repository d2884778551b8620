"""accounts: display name, registration, home site, subspecialties, token version

Revision ID: 0008_accounts
Revises: 0007_demographics
Create Date: 2026-12-02 16:10:00.000000

Users are managed (disabled, re-enabled, password reset, privileges changed) rather
than deleted. ``token_version`` is written into every access token; bumping it (on a
password reset or when an account is disabled) makes every token issued before useless.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_accounts"
down_revision: str | None = "0007_demographics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("name", sa.Text(), nullable=True))
    op.add_column("users", sa.Column("registration", sa.String(length=32), nullable=True))
    op.add_column("users", sa.Column("home_site_id", sa.Integer(), nullable=True))
    op.add_column(
        "users",
        sa.Column(
            "subspecialties",
            sa.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_foreign_key(
        op.f("fk_users_home_site_id_sites"),
        "users",
        "sites",
        ["home_site_id"],
        ["id"],
        ondelete="RESTRICT",
    )
    op.create_index(op.f("ix_users_home_site_id"), "users", ["home_site_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_home_site_id"), table_name="users")
    op.drop_constraint(op.f("fk_users_home_site_id_sites"), "users", type_="foreignkey")
    op.drop_column("users", "token_version")
    op.drop_column("users", "subspecialties")
    op.drop_column("users", "home_site_id")
    op.drop_column("users", "registration")
    op.drop_column("users", "name")
