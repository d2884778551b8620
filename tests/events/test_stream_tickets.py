"""``GET /api/v1/events?ticket=``: what a browser's EventSource opens, account checks included."""

from __future__ import annotations

import httpx
import pytest
import redis
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_user, bearer
from tests.events.conftest import LiveApi, quick_streams
from worklist.config import Settings
from worklist.enums import Role
from worklist.events import EventType, WorklistEvent
from worklist.events.bus import publish_sync
from worklist.models import Site, User


def _radiologist(db: sessionmaker[Session]) -> User:
    with db() as session, session.begin():
        return add_user(session, "dr.north", Role.RADIOLOGIST, NORTH)


def _ticket(live_api: LiveApi, settings: Settings, user: User) -> str:
    response = httpx.post(
        f"{live_api.base_url}/api/v1/auth/stream-ticket", headers=bearer(settings, user)
    )
    assert response.status_code == 200, response.text
    ticket: str = response.json()["ticket"]
    return ticket


def test_an_event_source_with_a_ticket_and_no_header_receives_its_events(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    ticket = _ticket(live_api, settings, _radiologist(db))

    with live_api.sse({"Accept": "text/event-stream"}, params={"ticket": ticket}) as reader:
        publish_sync(redis_client, [WorklistEvent(EventType.STUDY_CLAIMED, sites[SOUTH].id, "2.1")])
        publish_sync(redis_client, [WorklistEvent(EventType.STUDY_CLAIMED, sites[NORTH].id, "1.1")])
        [event] = reader.events(1)

    assert event.data is not None
    assert (event.event, event.data["study_uid"]) == (EventType.STUDY_CLAIMED, "1.1")


@pytest.mark.parametrize("change", [{"active": False}, {"role": Role.MANAGER}])
def test_a_ticket_of_a_disabled_or_changed_account_is_refused(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    change: dict[str, object],
) -> None:
    user = _radiologist(db)
    ticket = _ticket(live_api, settings, user)
    with live_api.sse({}, params={"ticket": ticket}):
        pass  # the ticket opens the stream while the account is as it was
    with db() as session, session.begin():
        session.execute(update(User).where(User.id == user.id).values(**change))

    response = httpx.get(f"{live_api.base_url}/api/v1/events", params={"ticket": ticket})

    assert response.status_code == 401


def test_a_stream_opened_with_a_ticket_ends_when_the_account_is_disabled(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
) -> None:
    quick_streams(live_api.app, recheck_seconds=0)  # re-check at every keep-alive
    user = _radiologist(db)
    with live_api.sse({}, params={"ticket": _ticket(live_api, settings, user)}) as reader:
        with db() as session, session.begin():
            session.execute(update(User).where(User.id == user.id).values(active=False))
        assert reader.end()
