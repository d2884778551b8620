"""alert stream order: stream positions assigned at commit time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 07:35:00.000000

The alert stream reads ``id > last``. Outbox ids are taken at insert time, so a message
could commit after a later-numbered one had already been read, and be skipped for good.
Serialising the inserting transactions with a lock held from insert to commit fixed that
but queued every alert of the network behind the previous one's whole request. Here a
deferred constraint trigger gives each alert message its stream position while its
transaction commits, under an advisory lock held only for the rest of that COMMIT (no
client round trip): positions follow commit order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pg_advisory_xact_lock(int, int) key of the alert stream: "ALRT", 1.
TRIGGERS = r"""
CREATE FUNCTION alert_stream_append() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(1095521876, 1);
    INSERT INTO alert_stream (message_id, site_id) VALUES (NEW.id, NEW.site_id);
    RETURN NULL;
END
$fn$;
CREATE CONSTRAINT TRIGGER outbox_messages_alert_stream AFTER INSERT ON outbox_messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.type LIKE 'alert.%')
    EXECUTE FUNCTION alert_stream_append();
CREATE TRIGGER alert_stream_append_only BEFORE UPDATE OR DELETE ON alert_stream
    FOR EACH ROW EXECUTE FUNCTION append_only();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS alert_stream_append_only ON alert_stream;
DROP TRIGGER IF EXISTS outbox_messages_alert_stream ON outbox_messages;
DROP FUNCTION IF EXISTS alert_stream_append();
"""


def upgrade() -> None:
    op.create_table(
        "alert_stream",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_alert_stream_message_id_outbox_messages"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_alert_stream_site_id_sites"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_stream")),
        sa.UniqueConstraint("message_id", name=op.f("uq_alert_stream_message_id")),
    )
    op.create_index("ix_alert_stream_site_id_id", "alert_stream", ["site_id", "id"], unique=False)
    # Alert messages written before this revision take their positions in id order.
    op.execute(
        "INSERT INTO alert_stream (message_id, site_id) SELECT id, site_id FROM outbox_messages "
        "WHERE type LIKE 'alert.%' ORDER BY id"
    )
    op.execute(TRIGGERS)


def downgrade() -> None:
    op.execute(DROP_TRIGGERS)
    op.drop_index("ix_alert_stream_site_id_id", table_name="alert_stream")
    op.drop_table("alert_stream")
