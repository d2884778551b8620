"""claims and reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:43:10.392572
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worklist.studies.sql import read_sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDS = r"""
CREATE FUNCTION reports_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'reports are part of the clinical record and are never deleted'
            USING ERRCODE = 'WL010';
    END IF;
    IF OLD.status <> 'draft' AND (
        NEW.text IS DISTINCT FROM OLD.text
        OR NEW.status = 'draft'
        OR NEW.author_id IS DISTINCT FROM OLD.author_id
        OR NEW.finalised_at IS DISTINCT FROM OLD.finalised_at
        OR NEW.finalised_by_id IS DISTINCT FROM OLD.finalised_by_id
        OR NEW.study_id IS DISTINCT FROM OLD.study_id
    ) THEN
        RAISE EXCEPTION 'the text of a final report cannot change (add an addendum)'
            USING ERRCODE = 'WL010';
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER reports_final_is_immutable BEFORE UPDATE OR DELETE ON reports
    FOR EACH ROW EXECUTE FUNCTION reports_guard();

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'WL011';
END
$fn$;
CREATE TRIGGER report_versions_append_only BEFORE UPDATE OR DELETE ON report_versions
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER report_addenda_append_only BEFORE UPDATE OR DELETE ON report_addenda
    FOR EACH ROW EXECUTE FUNCTION append_only();
"""

DROP_GUARDS = """
DROP TRIGGER IF EXISTS report_addenda_append_only ON report_addenda;
DROP TRIGGER IF EXISTS report_versions_append_only ON report_versions;
DROP TRIGGER IF EXISTS reports_final_is_immutable ON reports;
DROP FUNCTION IF EXISTS append_only();
DROP FUNCTION IF EXISTS reports_guard();
"""


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_claims_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_claims_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", name=op.f("pk_claims")),
    )
    op.create_index(op.f("ix_claims_expires_at"), "claims", ["expires_at"], unique=False)
    op.create_index(op.f("ix_claims_user_id"), "claims", ["user_id"], unique=False)
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.Enum("draft", "final", "amended", name="report_status"), nullable=False
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalised_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_reports_author_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["finalised_by_id"],
            ["users.id"],
            name=op.f("fk_reports_finalised_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_reports_study_id_studies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("study_id", name=op.f("uq_reports_study_id")),
    )
    op.create_table(
        "report_addenda",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_report_addenda_author_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_report_addenda_report_id_reports"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_addenda")),
    )
    op.create_index(
        op.f("ix_report_addenda_report_id"), "report_addenda", ["report_id"], unique=False
    )
    op.create_table(
        "report_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.Enum("draft", "final", "amended", name="report_status"), nullable=False
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("saved_by_id", sa.Integer(), nullable=False),
        sa.Column(
            "saved_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_report_versions_report_id_reports"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["saved_by_id"],
            ["users.id"],
            name=op.f("fk_report_versions_saved_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_versions")),
        sa.UniqueConstraint(
            "report_id", "version", name=op.f("uq_report_versions_report_id_version")
        ),
    )

    op.execute(GUARDS)
    op.execute(read_sql("index_instances_v2"))


def downgrade() -> None:
    op.execute(read_sql("index_instances_v1"))
    op.execute(DROP_GUARDS)
    op.drop_table("report_versions")
    op.drop_index(op.f("ix_report_addenda_report_id"), table_name="report_addenda")
    op.drop_table("report_addenda")
    op.drop_table("reports")
    op.drop_index(op.f("ix_claims_user_id"), table_name="claims")
    op.drop_index(op.f("ix_claims_expires_at"), table_name="claims")
    op.drop_table("claims")
    sa.Enum(name="report_status").drop(op.get_bind(), checkfirst=False)
