"""alerts and the delivery outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 05:59:40.655657

Critical-result alerts with their missed deadlines, and the transactional outbox that
carries alert and report events to the originating trust (messages, one delivery per
channel, every webhook attempt). Alerts are clinical record: never deleted, and what
was raised (study, category, finding, who, when) and who acknowledged it never change.
Messages, breaches and attempts are append-only (``append_only()`` of 0002).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

GUARDS = r"""
CREATE FUNCTION alerts_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'alerts are part of the clinical record and are never deleted'
            USING ERRCODE = 'WL012';
    END IF;
    IF NEW.study_id IS DISTINCT FROM OLD.study_id
        OR NEW.site_id IS DISTINCT FROM OLD.site_id
        OR NEW.category IS DISTINCT FROM OLD.category
        OR NEW.finding IS DISTINCT FROM OLD.finding
        OR NEW.recipient IS DISTINCT FROM OLD.recipient
        OR NEW.raised_by_id IS DISTINCT FROM OLD.raised_by_id
        OR NEW.raised_at IS DISTINCT FROM OLD.raised_at
        OR NEW.escalation_level < OLD.escalation_level
    THEN
        RAISE EXCEPTION 'what an alert raised cannot change' USING ERRCODE = 'WL012';
    END IF;
    IF OLD.status = 'acknowledged' AND (
        NEW.status <> 'acknowledged'
        OR NEW.acknowledged_by IS DISTINCT FROM OLD.acknowledged_by
        OR NEW.acknowledged_by_user_id IS DISTINCT FROM OLD.acknowledged_by_user_id
        OR NEW.acknowledged_at IS DISTINCT FROM OLD.acknowledged_at
        OR NEW.acknowledgement_note IS DISTINCT FROM OLD.acknowledgement_note
    ) THEN
        RAISE EXCEPTION 'an acknowledgement cannot change' USING ERRCODE = 'WL012';
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER alerts_record_is_kept BEFORE UPDATE OR DELETE ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_guard();
CREATE TRIGGER alert_breaches_append_only BEFORE UPDATE OR DELETE ON alert_breaches
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER outbox_messages_append_only BEFORE UPDATE OR DELETE ON outbox_messages
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER delivery_attempts_append_only BEFORE UPDATE OR DELETE ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION append_only();
"""

DROP_GUARDS = """
DROP TRIGGER IF EXISTS delivery_attempts_append_only ON delivery_attempts;
DROP TRIGGER IF EXISTS outbox_messages_append_only ON outbox_messages;
DROP TRIGGER IF EXISTS alert_breaches_append_only ON alert_breaches;
DROP TRIGGER IF EXISTS alerts_record_is_kept ON alerts;
DROP FUNCTION IF EXISTS alerts_guard();
"""

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column(
            "category",
            sa.Enum(
                "critical", "urgent", "significant_unexpected", "cancer", name="alert_category"
            ),
            nullable=False,
        ),
        sa.Column("finding", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("raised_by_id", sa.Integer(), nullable=False),
        sa.Column(
            "raised_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "acknowledged", name="alert_status"),
            server_default=sa.text("'open'"),
            nullable=False,
        ),
        sa.Column("escalation_level", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("acknowledged_by_user_id", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledgement_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_user_id"],
            ["users.id"],
            name=op.f("fk_alerts_acknowledged_by_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_id"],
            ["users.id"],
            name=op.f("fk_alerts_raised_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_alerts_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_alerts_study_id_studies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_open_ack_due_at",
        "alerts",
        ["ack_due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_alerts_raised_by_id_raised_at", "alerts", ["raised_by_id", "raised_at"], unique=False
    )
    op.create_index("ix_alerts_site_id_raised_at", "alerts", ["site_id", "raised_at"], unique=False)
    op.create_index(op.f("ix_alerts_study_id"), "alerts", ["study_id"], unique=False)
    op.create_table(
        "alert_breaches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_breaches_alert_id_alerts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_breaches")),
    )
    op.create_index(
        op.f("ix_alert_breaches_alert_id"), "alert_breaches", ["alert_id"], unique=False
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_outbox_messages_alert_id_alerts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_outbox_messages_site_id_sites"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["studies.id"],
            name=op.f("fk_outbox_messages_study_id_studies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_outbox_messages_webhook_id")),
    )
    op.create_index(
        op.f("ix_outbox_messages_alert_id"), "outbox_messages", ["alert_id"], unique=False
    )
    op.create_index(
        "ix_outbox_messages_site_id_id", "outbox_messages", ["site_id", "id"], unique=False
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Enum("webhook", "sse", name="delivery_channel"), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "delivered", name="delivery_status"),
            server_default=sa.text("'pending'"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_deliveries_message_id_outbox_messages"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_deliveries_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("message_id", "channel", name=op.f("uq_deliveries_message_id_channel")),
    )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND channel = 'webhook'"),
    )
    op.create_index(
        "ix_deliveries_pending_site_id",
        "deliveries",
        ["site_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_deliveries"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(
        op.f("ix_delivery_attempts_delivery_id"), "delivery_attempts", ["delivery_id"], unique=False
    )
    op.add_column("sites", sa.Column("webhook_previous_secret", sa.Text(), nullable=True))
    op.add_column(
        "sites",
        sa.Column("webhook_previous_secret_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "sites", sa.Column("webhook_disabled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("sites", sa.Column("webhook_disabled_reason", sa.Text(), nullable=True))
    op.execute(GUARDS)


def downgrade() -> None:
    op.execute(DROP_GUARDS)
    op.drop_column("sites", "webhook_disabled_reason")
    op.drop_column("sites", "webhook_disabled_at")
    op.drop_column("sites", "webhook_previous_secret_until")
    op.drop_column("sites", "webhook_previous_secret")
    op.drop_index(op.f("ix_delivery_attempts_delivery_id"), table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index(
        "ix_deliveries_pending_site_id",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_deliveries_due",
        table_name="deliveries",
        postgresql_where=sa.text("status = 'pending' AND channel = 'webhook'"),
    )
    op.drop_table("deliveries")
    op.drop_index("ix_outbox_messages_site_id_id", table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_alert_id"), table_name="outbox_messages")
    op.drop_table("outbox_messages")
    op.drop_index(op.f("ix_alert_breaches_alert_id"), table_name="alert_breaches")
    op.drop_table("alert_breaches")
    op.drop_index(op.f("ix_alerts_study_id"), table_name="alerts")
    op.drop_index("ix_alerts_site_id_raised_at", table_name="alerts")
    op.drop_index("ix_alerts_raised_by_id_raised_at", table_name="alerts")
    op.drop_index(
        "ix_alerts_open_ack_due_at",
        table_name="alerts",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_table("alerts")
    bind = op.get_bind()
    for name in ("delivery_status", "delivery_channel", "alert_status", "alert_category"):
        sa.Enum(name=name).drop(bind, checkfirst=False)
