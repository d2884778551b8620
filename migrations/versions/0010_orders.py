"""orders from the trusts' RIS, and results back

Revision ID: 0010_orders
Revises: 0009_matching_indexes
Create Date: 2026-12-03 14:00:00.000000

Orders (HL7 v2 ORM^O01/OMI^O23 or FHIR ServiceRequest, ``worklist.orders``), one per site
and accession number, matched to a study whichever arrives first (``studies.order_id``;
``index_instances_v4`` matches new studies); the HL7 senders of each site (MSH-4) and its
allowed addresses; the messages already applied (a resent MSH-10 is acknowledged, not
applied again); where results go (``sites.ris_host``/``ris_port``, deliveries on the new
channel ``hl7``, status ``failed`` for an AR); the alert's referrer; the study status
``cancelled`` and the role ``order_client``.

PostgreSQL cannot drop a value from an enum type: the downgrade leaves the new labels
(``cancelled``, ``order_client``, ``hl7``, ``failed``) in their types, unused (cancelled
studies go back to ``ready``, hl7 deliveries are removed, order clients disabled).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from worklist.studies.sql import DROP_INDEX_INSTANCES, read_sql

revision: str = "0010_orders"
down_revision: str | None = "0009_matching_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_LABELS = (
    ("study_status", "cancelled"),
    ("user_role", "order_client"),
    ("delivery_channel", "hl7"),
    ("delivery_status", "failed"),
)


def upgrade() -> None:
    # A new enum label cannot be used in the transaction that adds it (the hl7 index).
    with op.get_context().autocommit_block():
        for type_name, label in _NEW_LABELS:
            op.execute(f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{label}'")

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("accession_number", sa.Text(), nullable=False),
        sa.Column("placer_order_number", sa.Text(), nullable=True),
        sa.Column("filler_order_number", sa.Text(), nullable=True),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'active'"), nullable=False
        ),
        sa.Column("last_control", sa.String(length=16), nullable=True),
        sa.Column("ris_status", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column(
            "patient_identifiers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("patient_local_id", sa.Text(), nullable=True),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("patient_name", sa.Text(), nullable=True),
        sa.Column("patient_birth_date", sa.Date(), nullable=True),
        sa.Column("procedure_code", sa.Text(), nullable=True),
        sa.Column("procedure_coding_system", sa.Text(), nullable=True),
        sa.Column("procedure_name", sa.Text(), nullable=True),
        sa.Column(
            "priority",
            postgresql.ENUM(name="study_priority", create_type=False),
            nullable=True,
        ),
        sa.Column("ris_priority", sa.Text(), nullable=True),
        sa.Column("referrer_name", sa.Text(), nullable=True),
        sa.Column("referrer_code", sa.Text(), nullable=True),
        sa.Column("referrer_organisation", sa.Text(), nullable=True),
        sa.Column("referrer_organisation_code", sa.Text(), nullable=True),
        sa.Column("patient_source", sa.String(length=16), nullable=True),
        sa.Column("indication", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
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
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "accession_number"),
    )
    op.create_table(
        "hl7_senders",
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("facility"),
    )
    op.create_index(op.f("ix_hl7_senders_site_id"), "hl7_senders", ["site_id"], unique=False)
    op.create_table(
        "hl7_messages",
        sa.Column("facility", sa.Text(), nullable=False),
        sa.Column("control_id", sa.Text(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("facility", "control_id"),
    )
    op.add_column("studies", sa.Column("order_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "studies_order_id_fkey", "studies", "orders", ["order_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(op.f("ix_studies_order_id"), "studies", ["order_id"], unique=False)
    op.add_column(
        "sites",
        sa.Column("hl7_hosts", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.add_column("sites", sa.Column("ris_host", sa.Text(), nullable=True))
    op.add_column("sites", sa.Column("ris_port", sa.Integer(), nullable=True))
    for column in ("referrer_name", "referrer_code", "referrer_organisation"):
        op.add_column("alerts", sa.Column(column, sa.Text(), nullable=True))
    op.create_index(
        "ix_deliveries_hl7_due",
        "deliveries",
        ["next_attempt_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND channel = 'hl7'"),
    )
    op.create_index(
        "ix_deliveries_failed",
        "deliveries",
        ["site_id", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'failed'"),
    )
    op.execute(DROP_INDEX_INSTANCES)
    op.execute(read_sql("index_instances_v4"))


def downgrade() -> None:
    op.execute(DROP_INDEX_INSTANCES)
    op.execute(read_sql("index_instances_v3"))
    op.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE channel = 'hl7')"
    )
    op.execute("DELETE FROM deliveries WHERE channel = 'hl7'")
    op.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'failed'")
    op.execute("UPDATE studies SET status = 'ready' WHERE status = 'cancelled'")
    op.execute("UPDATE users SET active = false WHERE role = 'order_client'")
    op.drop_index("ix_deliveries_failed", table_name="deliveries")
    op.drop_index("ix_deliveries_hl7_due", table_name="deliveries")
    for column in ("referrer_organisation", "referrer_code", "referrer_name"):
        op.drop_column("alerts", column)
    op.drop_column("sites", "ris_port")
    op.drop_column("sites", "ris_host")
    op.drop_column("sites", "hl7_hosts")
    op.drop_index(op.f("ix_studies_order_id"), table_name="studies")
    op.drop_constraint("studies_order_id_fkey", "studies", type_="foreignkey")
    op.drop_column("studies", "order_id")
    op.drop_table("hl7_messages")
    op.drop_index(op.f("ix_hl7_senders_site_id"), table_name="hl7_senders")
    op.drop_table("hl7_senders")
    op.drop_table("orders")
