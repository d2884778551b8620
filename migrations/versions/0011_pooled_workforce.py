"""pooled reporting workforce: subspecialties, routing, allocation, second opinions,
double reading

Revision ID: 0011_pooled_workforce
Revises: 0010_orders
Create Date: 2026-12-04 01:20:00.000000

The network's subspecialty vocabulary (seeded with DESIGN's default codes) and the ordered
routing rules that give a study its subspecialty (``studies.subspecialty``,
``subspecialty_rule``, and the ``body_part`` they match on); each site's allocation
settings (cap, next-only routine, the general-reader rule); claims handed out together
(``claims.group_study_id``); second opinions, double-reading rules and double reads, and
the study grants a radiologist holds while such a request names them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_pooled_workforce"
down_revision: str | None = "0010_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SUBSPECIALTIES = (
    ("neuro", "Neuroradiology"),
    ("head_neck", "Head and neck"),
    ("chest", "Chest"),
    ("cardiac", "Cardiac"),
    ("abdomen", "Abdomen"),
    ("gu", "Genitourinary"),
    ("msk", "Musculoskeletal"),
    ("breast", "Breast"),
    ("paediatric", "Paediatric"),
    ("vascular_ir", "Vascular and interventional"),
    ("nuclear_medicine", "Nuclear medicine"),
    ("general", "General"),
)


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    subspecialties = op.create_table(
        "subspecialties",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_subspecialties")),
    )
    op.bulk_insert(subspecialties, [{"code": c, "name": n} for c, n in DEFAULT_SUBSPECIALTIES])
    op.create_table(
        "routing_rules",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subspecialty", sa.String(length=32), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_part", sa.Text(), nullable=True),
        sa.Column("procedure_pattern", sa.Text(), nullable=True),
        sa.Column("max_age_years", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subspecialty"],
            ["subspecialties.code"],
            name=op.f("fk_routing_rules_subspecialty_subspecialties"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_routing_rules")),
    )

    op.add_column("studies", sa.Column("body_part", sa.Text(), nullable=True))
    op.add_column("studies", sa.Column("subspecialty", sa.String(length=32), nullable=True))
    op.add_column("studies", sa.Column("subspecialty_rule", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_studies_subspecialty_subspecialties"),
        "studies",
        "subspecialties",
        ["subspecialty"],
        ["code"],
        ondelete="RESTRICT",
    )
    # users.subspecialties stays an array: the application checks it against the table.

    op.add_column("claims", sa.Column("group_study_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_claims_group_study_id_studies"),
        "claims",
        "studies",
        ["group_study_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_claims_group_study_id"), "claims", ["group_study_id"])

    op.add_column(
        "sites",
        sa.Column("allocation_cap", sa.Integer(), server_default=sa.text("3"), nullable=False),
    )
    op.add_column(
        "sites",
        sa.Column(
            "next_only_routine", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "sites",
        sa.Column(
            "general_reader",
            sa.String(length=16),
            server_default=sa.text("'always'"),
            nullable=False,
        ),
    )
    op.add_column(
        "sites",
        sa.Column("general_after_share", sa.Float(), server_default=sa.text("0.5"), nullable=False),
    )

    op.create_table(
        "study_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("reason_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_study_grants_study_id_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_study_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_grants")),
        sa.UniqueConstraint(
            "user_id",
            "study_id",
            "reason",
            "reason_id",
            name=op.f("uq_study_grants_user_id_study_id_reason_reason_id"),
        ),
    )
    op.create_index("ix_study_grants_reason", "study_grants", ["reason", "reason_id"])

    op.create_table(
        "second_opinions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("subspecialty", sa.String(length=32), nullable=True),
        sa.Column("radiologist_id", sa.Integer(), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("claimed_by_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agreement", sa.String(length=32), nullable=True),
        sa.Column("answer_text", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by_id"],
            ["users.id"],
            name=op.f("fk_second_opinions_claimed_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["radiologist_id"],
            ["users.id"],
            name=op.f("fk_second_opinions_radiologist_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_second_opinions_requested_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_second_opinions_study_id_studies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["subspecialty"],
            ["subspecialties.code"],
            name=op.f("fk_second_opinions_subspecialty_subspecialties"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_opinions")),
    )
    op.create_index(op.f("ix_second_opinions_study_id"), "second_opinions", ["study_id"])
    op.create_index(
        "ix_second_opinions_open",
        "second_opinions",
        ["urgency", "created_at"],
        postgresql_where=sa.text("status = 'open'"),
    )

    op.create_table(
        "double_reading_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("subspecialty", sa.String(length=32), nullable=True),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("other_trust", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_double_reading_rules_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subspecialty"],
            ["subspecialties.code"],
            name=op.f("fk_double_reading_rules_subspecialty_subspecialties"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_double_reading_rules")),
    )
    op.create_index(op.f("ix_double_reading_rules_site_id"), "double_reading_rules", ["site_id"])

    op.create_table(
        "double_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'open'"), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("first_reader_id", sa.Integer(), nullable=False),
        sa.Column("other_trust", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score", sa.String(length=4), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_reader_id"],
            ["users.id"],
            name=op.f("fk_double_reads_first_reader_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["double_reads.id"],
            name=op.f("fk_double_reads_parent_id_double_reads"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["reader_id"],
            ["users.id"],
            name=op.f("fk_double_reads_reader_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_double_reads_study_id_studies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_double_reads")),
    )
    op.create_index(op.f("ix_double_reads_study_id"), "double_reads", ["study_id"])
    op.create_index(op.f("ix_double_reads_reader_id"), "double_reads", ["reader_id"])
    op.create_index(
        "ix_double_reads_open",
        "double_reads",
        ["created_at"],
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("double_reads")
    op.drop_table("double_reading_rules")
    op.drop_table("second_opinions")
    op.drop_table("study_grants")
    for column in ("general_after_share", "general_reader", "next_only_routine", "allocation_cap"):
        op.drop_column("sites", column)
    op.drop_index(op.f("ix_claims_group_study_id"), table_name="claims")
    op.drop_constraint(op.f("fk_claims_group_study_id_studies"), "claims", type_="foreignkey")
    op.drop_column("claims", "group_study_id")
    op.drop_constraint(
        op.f("fk_studies_subspecialty_subspecialties"), "studies", type_="foreignkey"
    )
    for column in ("subspecialty_rule", "subspecialty", "body_part"):
        op.drop_column("studies", column)
    op.drop_table("routing_rules")
    op.drop_table("subspecialties")
