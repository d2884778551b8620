"""GET /api/v1/events: visibility per trust, Last-Event-ID replay, keep-alives, access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, add_user, bearer
from tests.conftest import run_jobs
from tests.events.conftest import LiveApi, SseEvent, SseReader, quick_streams, unused_redis_url
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role, StudyStatus
from worklist.events import EventType, WorklistEvent
from worklist.events import stream as event_stream
from worklist.events.bus import STREAM_KEY, publish_sync
from worklist.events.stream import parse_event_id
from worklist.models import Site, User
from worklist.sse import InvalidEventId
from worklist.worker import JOBS


def _user(db: sessionmaker[Session], username: str, role: Role, *codes: str) -> User:
    with db() as session, session.begin():
        return add_user(session, username, role, *codes)


def _publish(client: redis.Redis, site: Site, study_uid: str, **data: object) -> str:
    event = WorklistEvent(EventType.STUDY_CLAIMED, site.id, study_uid, dict(data))
    return publish_sync(client, [event])[0]


def _uids(events: list[SseEvent]) -> list[str | None]:
    return [e.data["study_uid"] if e.data else None for e in events]


def _no_more_events(reader: SseReader, client: redis.Redis, site: Site) -> str:
    """Nothing is sent before a marker published now (the stream keeps its order)."""
    marker = _publish(client, site, "marker")
    assert [e.id for e in reader.events(1)] == [marker]
    return marker


def test_a_reconnecting_client_receives_exactly_the_missed_events_of_its_trusts_in_order(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    north, south = sites[NORTH], sites[SOUTH]
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    _publish(redis_client, north, "1.0")  # before the client connects: never shown

    with live_api.sse(headers) as reader:
        _publish(redis_client, north, "1.1", username="dr.a")
        _publish(redis_client, south, "2.1")
        _publish(redis_client, north, "1.2")
        seen = reader.events(2)
        assert reader.retry is not None
    assert _uids(seen) == ["1.1", "1.2"]
    assert [e.event for e in seen] == ["study.claimed", "study.claimed"]
    assert seen[0].data == {
        "study_uid": "1.1",
        "site": NORTH,
        "at": seen[0].data["at"] if seen[0].data else None,
        "data": {"username": "dr.a"},
    }
    last_seen = seen[-1].id
    assert last_seen is not None

    missed = [_publish(redis_client, north, "1.3")]
    _publish(redis_client, south, "2.2")
    missed.append(_publish(redis_client, north, "1.4"))
    _publish(redis_client, south, "2.3")

    with live_api.sse(headers, last_event_id=last_seen) as reader:
        replayed = reader.events(2)
        live = _publish(redis_client, north, "1.5")
        after = reader.events(1)
        _no_more_events(reader, redis_client, north)
    assert [(e.id, e.data["study_uid"] if e.data else None) for e in replayed] == [
        (missed[0], "1.3"),
        (missed[1], "1.4"),
    ]
    assert [(e.id, e.data["site"] if e.data else None) for e in after] == [(live, NORTH)]


def test_last_event_id_is_also_accepted_as_a_query_parameter(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    first = _publish(redis_client, sites[NORTH], "1.1")
    second = _publish(redis_client, sites[NORTH], "1.2")
    with live_api.sse(headers, params={"last_event_id": first}) as reader:
        assert [e.id for e in reader.events(1)] == [second]
    # The header wins over the query parameter (a browser's reconnect sends the newer id).
    with live_api.sse(headers, last_event_id=first, params={"last_event_id": "0-0"}) as reader:
        assert [e.id for e in reader.events(1)] == [second]
        _no_more_events(reader, redis_client, sites[NORTH])


def test_each_role_sees_the_trusts_it_may_see(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    start = _publish(redis_client, sites[NORTH], "0.0")
    _publish(redis_client, sites[NORTH], "1.1")
    _publish(redis_client, sites[SOUTH], "2.1")
    _publish(redis_client, sites[NORTH], "1.2")
    expected = {
        ("admin", Role.ADMIN, ()): ["1.1", "2.1", "1.2"],
        ("m.south", Role.MANAGER, (SOUTH,)): ["2.1"],
        ("dr.both", Role.RADIOLOGIST, (NORTH, SOUTH)): ["1.1", "2.1", "1.2"],
    }
    markers: list[str] = []
    for (username, role, codes), uids in expected.items():
        headers = bearer(settings, _user(db, username, role, *codes))
        with live_api.sse(headers, last_event_id=start) as reader:
            assert _uids(reader.events(len(uids))) == uids, username
            assert [e.id for e in reader.events(len(markers))] == markers  # earlier rounds'
            markers.append(_no_more_events(reader, redis_client, sites[SOUTH]))


def test_alert_clients_have_no_event_stream_and_tokens_are_required(
    live_api: LiveApi, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    alerts = bearer(settings, _user(db, "north.alerts", Role.ALERT_CLIENT, NORTH))
    with live_api.client() as client:
        assert client.get("/api/v1/events", headers=alerts).status_code == 403
        assert client.get("/api/v1/events").status_code == 401


def test_a_last_event_id_that_is_not_a_stream_id_is_rejected(
    live_api: LiveApi, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    with live_api.client() as client:
        response = client.get("/api/v1/events", headers={**headers, "Last-Event-ID": "abc"})
    assert response.status_code == 422
    assert "Last-Event-ID" in response.json()["detail"]


def test_a_quiet_stream_sends_keep_alive_comments(
    live_api: LiveApi, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    with live_api.sse(headers) as reader:
        assert reader.next_comment() == "keep-alive"


def test_a_client_resuming_after_trimmed_events_is_told_to_resync(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    old = _publish(redis_client, sites[NORTH], "1.1")
    _publish(redis_client, sites[NORTH], "1.2")
    kept = _publish(redis_client, sites[NORTH], "1.3")
    redis_client.xtrim(STREAM_KEY, maxlen=1, approximate=False)
    with live_api.sse(headers, last_event_id=old) as reader:
        resync, first = reader.events(2)
    assert resync.event == event_stream.RESYNC_EVENT
    assert resync.id is None
    assert (first.id, first.data["study_uid"] if first.data else None) == (kept, "1.3")


def test_the_stream_ends_when_the_caller_loses_access(
    live_api: LiveApi, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    quick_streams(live_api.app, recheck_seconds=0)  # re-check at every keep-alive
    user = _user(db, "dr.north", Role.RADIOLOGIST, NORTH)
    with live_api.sse(bearer(settings, user)) as reader:
        with db() as session, session.begin():
            session.execute(update(User).where(User.id == user.id).values(active=False))
        assert reader.end()


def test_the_stream_answers_503_while_redis_is_unreachable(
    settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    offline = settings.model_copy(update={"redis_url": unused_redis_url()})
    with TestClient(create_app(offline)) as client:
        response = client.get("/api/v1/events", headers=headers)
    assert response.status_code == 503
    assert "Redis" in response.json()["detail"]


def test_a_study_promoted_by_the_worker_is_announced_as_ready(
    live_api: LiveApi,
    settings: Settings,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
) -> None:
    headers = bearer(settings, _user(db, "dr.north", Role.RADIOLOGIST, NORTH))
    quiet_since = datetime.now(UTC) - timedelta(hours=1)
    with db() as session, session.begin():
        study = add_study(
            session,
            add_patient(session, sites[NORTH]),
            status=StudyStatus.RECEIVING,
            received_at=quiet_since,
        )
    with live_api.sse(headers) as reader:
        assert (
            run_jobs(settings, JOBS, redis_url=settings.require_redis_url())[
                "promote_quiet_studies"
            ]
            == 1
        )
        (ready,) = reader.events(1)
    assert ready.event == "study.ready"
    assert ready.data is not None
    assert (ready.data["study_uid"], ready.data["site"]) == (study.study_uid, NORTH)


@pytest.mark.parametrize(
    ("text", "position"), [("1712345678901-3", "1712345678901-3"), (" 0042 ", "42-0")]
)
def test_a_last_event_id_is_read_as_a_stream_id(text: str, position: str) -> None:
    assert parse_event_id(text) == position


@pytest.mark.parametrize("text", ["abc", "1-2-3", "-1", "1-", "9" * 21])
def test_a_last_event_id_that_is_no_stream_id_is_refused(text: str) -> None:
    with pytest.raises(InvalidEventId):
        parse_event_id(text)
