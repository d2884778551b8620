"""Escalation of alerts whose acknowledgement deadline passed (a worker job).

Each run takes up to ``ESCALATE_BATCH`` overdue open alerts with ``FOR NO KEY UPDATE
SKIP LOCKED``: several workers share the backlog without escalating one alert twice, and
an acknowledgement in flight (which holds the alert's row) is never overtaken. A missed
deadline is recorded as a breach, the alert's level goes up, its next deadline runs from
now, and an ``alert.escalated`` message goes to the trust (webhook re-delivery and the
alert stream) in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from worklist import outbox
from worklist.alerts import repository
from worklist.alerts.schemas import alert_message_data
from worklist.audit import repository as audit
from worklist.config import Settings
from worklist.enums import AuditAction, OutboxEventType
from worklist.metrics import ALERT_ESCALATIONS

ESCALATE_BATCH = 200
WORKER_ACTOR = "worker"


async def escalate_overdue(
    session: AsyncSession, settings: Settings, *, now: datetime | None = None
) -> int:
    """Escalate every open alert past its ``ack_due_at`` at ``now`` (default the database
    clock); return how many."""
    overdue = await repository.lock_overdue(session, limit=ESCALATE_BATCH, now=now)
    if not overdue:
        return 0
    # The deadlines that were missed, kept before escalating moves them on.
    missed = {alert.id: alert.ack_due_at for alert in overdue}
    for alert in overdue:
        await repository.escalate(
            session,
            alert=alert,
            deadline=settings.alert_ack_deadlines[alert.category.value],
            now=now,
        )
    views = await repository.get_views(session, [alert.id for alert in overdue])
    counted: list[tuple[str, str]] = []
    for view in views:
        alert = view.alert
        audit.record(
            session,
            actor=WORKER_ACTOR,
            actor_kind=audit.ActorKind.SYSTEM,
            action=AuditAction.ALERT_ESCALATED,
            study_uid=view.study_uid,
            site_id=alert.site_id,
            detail={
                "alert_id": str(alert.id),
                "escalation_level": alert.escalation_level,
                "missed_deadline": missed[alert.id].isoformat(),
                "ack_due_at": alert.ack_due_at.isoformat(),
            },
        )
        outbox.enqueue(
            session,
            site=view.site,
            event_type=OutboxEventType.ALERT_ESCALATED,
            data=alert_message_data(view),
            study_id=alert.study_id,
            alert_id=alert.id,
            sse=True,
        )
        counted.append((view.site.code, alert.category.value))

    def count(_: Session) -> None:
        # Only escalations that committed are counted.
        for site_code, category in counted:
            ALERT_ESCALATIONS.labels(site_code, category).inc()

    event.listen(session.sync_session, "after_commit", count, once=True)
    return len(views)
