"""demand's daily rollup, and the triggers that mark a rolled day changed

Revision ID: 0013_demand_rollup
Revises: 0012_stats
Create Date: 2026-12-04 19:30:00.000000

``demand_rollup`` holds, per closed UTC day, site and first modality, the studies first
received and the first final reports signed; ``demand_rollup_days`` the days it holds.
The worker fills them (``worklist.stats.rollup``). A closed day's figures change only
when a study or report of that day is inserted, deleted or changed afterwards (a study
moved to another site, its first modality changed by new images, a report of an import);
the triggers below then add a row to ``demand_rollup_marks`` for the day, so the figures
compute that day from the live tables until the worker has rolled it up again. A day is
closed for a change once it is before the UTC day in which the changing transaction
began; the worker rolls up only days before the oldest open transaction began.

Each trigger fires only when its ``WHEN`` holds (in C, per row): an ordinary arrival,
sign-off or new image of today's study runs no function.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_demand_rollup"
down_revision: str | None = "0012_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLOSED = "date_trunc('day', now(), 'UTC')"

TRIGGERS = rf"""
CREATE FUNCTION demand_rollup_mark(changed timestamptz) RETURNS void LANGUAGE sql AS $fn$
    INSERT INTO demand_rollup_marks (day)
    SELECT date(timezone('UTC', changed)) WHERE changed < {CLOSED}
$fn$;

CREATE FUNCTION studies_demand_mark() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM demand_rollup_mark(OLD.received_at);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM demand_rollup_mark(NEW.received_at);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- The study's report is counted under the study's site and first modality.
        PERFORM demand_rollup_mark(finalised_at) FROM reports WHERE study_id = NEW.id;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION reports_demand_mark() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM demand_rollup_mark(OLD.finalised_at);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM demand_rollup_mark(NEW.finalised_at);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER studies_demand_insert AFTER INSERT ON studies FOR EACH ROW
    WHEN (NEW.received_at < {CLOSED})
    EXECUTE FUNCTION studies_demand_mark();
CREATE TRIGGER studies_demand_update AFTER UPDATE OF site_id, modalities, received_at
    ON studies FOR EACH ROW
    WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id
          OR OLD.modalities[1] IS DISTINCT FROM NEW.modalities[1]
          OR OLD.received_at IS DISTINCT FROM NEW.received_at)
    EXECUTE FUNCTION studies_demand_mark();
CREATE TRIGGER studies_demand_delete AFTER DELETE ON studies FOR EACH ROW
    WHEN (OLD.received_at < {CLOSED})
    EXECUTE FUNCTION studies_demand_mark();
CREATE TRIGGER reports_demand_insert AFTER INSERT ON reports FOR EACH ROW
    WHEN (NEW.finalised_at < {CLOSED})
    EXECUTE FUNCTION reports_demand_mark();
CREATE TRIGGER reports_demand_update AFTER UPDATE OF finalised_at, study_id ON reports
    FOR EACH ROW
    WHEN (OLD.finalised_at IS DISTINCT FROM NEW.finalised_at
          OR OLD.study_id IS DISTINCT FROM NEW.study_id)
    EXECUTE FUNCTION reports_demand_mark();
CREATE TRIGGER reports_demand_delete AFTER DELETE ON reports FOR EACH ROW
    WHEN (OLD.finalised_at < {CLOSED})
    EXECUTE FUNCTION reports_demand_mark();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS reports_demand_delete ON reports;
DROP TRIGGER IF EXISTS reports_demand_update ON reports;
DROP TRIGGER IF EXISTS reports_demand_insert ON reports;
DROP TRIGGER IF EXISTS studies_demand_delete ON studies;
DROP TRIGGER IF EXISTS studies_demand_update ON studies;
DROP TRIGGER IF EXISTS studies_demand_insert ON studies;
DROP FUNCTION IF EXISTS reports_demand_mark();
DROP FUNCTION IF EXISTS studies_demand_mark();
DROP FUNCTION IF EXISTS demand_rollup_mark(timestamptz);
"""


def upgrade() -> None:
    """The rollup's tables, then the triggers that mark its days."""
    op.create_table(
        "demand_rollup",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.Text(), nullable=False),
        sa.Column("arrivals", sa.Integer(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_demand_rollup_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("day", "site_id", "modality", name=op.f("pk_demand_rollup")),
    )
    op.create_table(
        "demand_rollup_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "rolled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_demand_rollup_days")),
    )
    op.create_table(
        "demand_rollup_marks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demand_rollup_marks")),
    )
    op.create_index("ix_demand_rollup_marks_day", "demand_rollup_marks", ["day"])
    op.execute(TRIGGERS)


def downgrade() -> None:
    """Drop the triggers and the tables."""
    op.execute(DROP_TRIGGERS)
    op.drop_index("ix_demand_rollup_marks_day", table_name="demand_rollup_marks")
    op.drop_table("demand_rollup_marks")
    op.drop_table("demand_rollup_days")
    op.drop_table("demand_rollup")
