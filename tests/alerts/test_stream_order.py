"""Alert stream positions follow commit order, so ``id > last`` never skips an event."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_site
from tests.factories import add_outbox_message
from worklist.enums import OutboxEventType
from worklist.models import AlertStreamEntry, Site


def _stream(db: sessionmaker[Session]) -> list[int]:
    """The message ids in stream order (committed entries only)."""
    with db() as session:
        stmt = select(AlertStreamEntry.message_id).order_by(AlertStreamEntry.id)
        return list(session.scalars(stmt))


def _enqueue(session: Session, site_id: int, event_type: OutboxEventType) -> int:
    message = add_outbox_message(
        session, session.get_one(Site, site_id), event_type=event_type, sse=True
    )
    session.flush()
    return message.id


def test_a_message_numbered_first_but_committed_last_comes_last_in_the_stream(
    db: sessionmaker[Session],
) -> None:
    with db() as session, session.begin():
        site_id = add_site(session, "RXA").id

    with db() as slow, db() as fast:
        slow.begin()
        first_id = _enqueue(slow, site_id, OutboxEventType.ALERT_RAISED)
        with fast.begin():
            second_id = _enqueue(fast, site_id, OutboxEventType.ALERT_RAISED)
        assert first_id < second_id
        # A reader now has read past the second message...
        assert _stream(db) == [second_id]
        slow.commit()

    # ...and still finds the first one after it, instead of having skipped it.
    assert _stream(db) == [second_id, first_id]


def test_report_messages_and_rolled_back_alerts_take_no_stream_position(
    db: sessionmaker[Session],
) -> None:
    with db() as session, session.begin():
        site_id = add_site(session, "RXA").id
    with db() as session:
        session.begin()
        _enqueue(session, site_id, OutboxEventType.ALERT_RAISED)
        session.rollback()
    with db() as session, session.begin():
        _enqueue(session, site_id, OutboxEventType.REPORT_FINALISED)
        kept = _enqueue(session, site_id, OutboxEventType.ALERT_ESCALATED)

    assert _stream(db) == [kept]
