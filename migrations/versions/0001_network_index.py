"""network index

Revision ID: 0001
Revises:
Create Date: 2026-11-23 02:54:49.593588
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from worklist.studies.sql import DROP_INDEX_INSTANCES, read_sql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"], unique=False)
    op.create_index("ix_audit_log_site_id_at", "audit_log", ["site_id", "at"], unique=False)
    op.create_index("ix_audit_log_study_uid_at", "audit_log", ["study_uid", "at"], unique=False)
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "default_priority",
            sa.Enum(
                "stat", "urgent", "inpatient", "cancer_pathway", "routine", name="study_priority"
            ),
            nullable=True,
        ),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_sites_code")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column(
            "role",
            sa.Enum("radiologist", "manager", "admin", "alert_client", name="user_role"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "dicom_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("hosts", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_dicom_nodes_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_nodes")),
        sa.UniqueConstraint("ae_title", name=op.f("uq_dicom_nodes_ae_title")),
    )
    op.create_index(op.f("ix_dicom_nodes_site_id"), "dicom_nodes", ["site_id"], unique=False)
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("local_id", sa.Text(), nullable=False),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_patients_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("site_id", "local_id", name=op.f("uq_patients_site_id_local_id")),
    )
    op.create_index(op.f("ix_patients_nhs_number"), "patients", ["nhs_number"], unique=False)
    op.create_table(
        "user_sites",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_user_sites_site_id_sites"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sites_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "site_id", name=op.f("pk_user_sites")),
    )
    op.create_index(op.f("ix_user_sites_site_id"), "user_sites", ["site_id"], unique=False)
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("accession_number", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("study_datetime", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "modalities", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "priority",
            sa.Enum(
                "stat", "urgent", "inpatient", "cancer_pathway", "routine", name="study_priority"
            ),
            nullable=False,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum("receiving", "ready", "in_progress", "reported", name="study_status"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_instance_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("series_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("instance_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("flags", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_studies_patient_id_patients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_studies_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_studies_study_uid")),
    )
    op.create_index(
        op.f("ix_studies_accession_number"), "studies", ["accession_number"], unique=False
    )
    op.create_index(op.f("ix_studies_patient_id"), "studies", ["patient_id"], unique=False)
    op.create_index(
        "ix_studies_receiving_quiet",
        "studies",
        ["last_instance_at"],
        unique=False,
        postgresql_where=sa.text("status = 'receiving'"),
    )
    op.create_index(
        "ix_studies_site_worklist_order",
        "studies",
        ["site_id", "status", "due_at", "priority", "received_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_studies_worklist_order",
        "studies",
        ["status", "due_at", "priority", "received_at", "id"],
        unique=False,
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("instance_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_series_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("series_uid", name=op.f("uq_series_series_uid")),
    )
    op.create_index(op.f("ix_series_study_id"), "series", ["study_id"], unique=False)
    op.create_table(
        "instances",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_instances_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_instances_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_instances_sop_instance_uid")),
    )
    op.create_index(op.f("ix_instances_series_id"), "instances", ["series_id"], unique=False)
    op.create_index(op.f("ix_instances_study_id"), "instances", ["study_id"], unique=False)

    op.execute(read_sql("index_instances_v1"))


def downgrade() -> None:
    op.execute(DROP_INDEX_INSTANCES)
    op.drop_index(op.f("ix_instances_study_id"), table_name="instances")
    op.drop_index(op.f("ix_instances_series_id"), table_name="instances")
    op.drop_table("instances")
    op.drop_index(op.f("ix_series_study_id"), table_name="series")
    op.drop_table("series")
    op.drop_index("ix_studies_worklist_order", table_name="studies")
    op.drop_index("ix_studies_site_worklist_order", table_name="studies")
    op.drop_index(
        "ix_studies_receiving_quiet",
        table_name="studies",
        postgresql_where=sa.text("status = 'receiving'"),
    )
    op.drop_index(op.f("ix_studies_patient_id"), table_name="studies")
    op.drop_index(op.f("ix_studies_accession_number"), table_name="studies")
    op.drop_table("studies")
    op.drop_index(op.f("ix_user_sites_site_id"), table_name="user_sites")
    op.drop_table("user_sites")
    op.drop_index(op.f("ix_patients_nhs_number"), table_name="patients")
    op.drop_table("patients")
    op.drop_index(op.f("ix_dicom_nodes_site_id"), table_name="dicom_nodes")
    op.drop_table("dicom_nodes")
    op.drop_table("users")
    op.drop_table("sites")
    op.drop_index("ix_audit_log_study_uid_at", table_name="audit_log")
    op.drop_index("ix_audit_log_site_id_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_at", table_name="audit_log")
    op.drop_table("audit_log")
    for enum_name in ("study_status", "study_priority", "user_role"):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=False)
