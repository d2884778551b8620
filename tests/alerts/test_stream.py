"""GET /api/v1/alerts/stream: a trust's alert events from the outbox, replay, access."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    TRUST_C,
    LiveApi,
    Network,
    add_study_of,
    claim_for,
    deliveries,
    messages,
    wait_until,
)
from tests.events.conftest import SseReader, quick_streams
from worklist.alerts import stream as alert_stream
from worklist.alerts.stream import parse_event_id
from worklist.enums import DeliveryChannel
from worklist.metrics import DELIVERY_LATENCY
from worklist.models import User
from worklist.sse import InvalidEventId


@pytest.fixture
def study_c(db: sessionmaker[Session], network: Network) -> str:
    """A trust C study claimed by trust C's radiologist."""
    with db() as session, session.begin():
        study = add_study_of(session, network.sites[TRUST_C])
        claim_for(session, study, network.users["rad_c"])
        return study.study_uid


def _no_more_events(
    reader: SseReader, live_api: LiveApi, headers: dict[str, str], study_uid: str
) -> str:
    """Nothing is sent before a marker alert raised now (the stream keeps its order)."""
    marker: str = live_api.raise_alert(headers, study_uid, finding="marker")["id"]
    [event] = reader.events(1)
    assert (event.event, event.data["id"] if event.data else None) == ("alert.raised", marker)
    return marker


def _sse_count() -> float:
    return sum(
        sample.value
        for metric in DELIVERY_LATENCY.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels.get("channel") == "sse"
    )


def test_the_trusts_alert_client_receives_its_alert_events_and_they_are_marked_delivered(
    live_api: LiveApi, network: Network, db: sessionmaker[Session], study_c: str
) -> None:
    live_api.raise_alert(network["rad_b"], network.study_uid)  # before connecting: not replayed
    observed = _sse_count()

    with live_api.sse(network["alert_a"]) as reader:
        alert = live_api.raise_alert(network["rad_b"], network.study_uid)
        live_api.raise_alert(network["rad_c"], study_c)  # trust C's: never shown to A
        ack = live_api.http.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge",
            json={"acknowledged_by": "Dr A"},
            headers=network["alert_a"],
        )
        assert ack.status_code == 200
        raised, acknowledged = reader.events(2)
        marker = _no_more_events(reader, live_api, network["rad_b"], network.study_uid)
        assert reader.retry is not None

    sent = messages(db, alert["id"])
    assert [(raised.id, raised.event), (acknowledged.id, acknowledged.event)] == [
        (str(m.id), m.type) for m in sent
    ]
    assert raised.data == {k: v for k, v in alert.items() if k != "deliveries"}
    assert acknowledged.data is not None
    assert acknowledged.data["status"] == "acknowledged"
    assert acknowledged.data["acknowledged_by"] == "Dr A"

    def stream_deliveries_done() -> bool:
        shown = [*deliveries(db, alert["id"]), *deliveries(db, marker)]
        return all(d.status == "delivered" for d in shown if d.channel is DeliveryChannel.SSE)

    wait_until(stream_deliveries_done, what="sse deliveries marked delivered")
    for delivery in deliveries(db, alert["id"]):
        if delivery.channel is DeliveryChannel.SSE:
            assert delivery.attempts == 1
            assert delivery.delivered_at is not None
            assert delivery.last_attempt_at is not None
    # The metric is observed just after the marking commits.
    shown = observed + 3  # the alert's two events and the marker
    wait_until(lambda: _sse_count() >= shown, what="sse delivery latency observed")
    assert _sse_count() == shown


def test_a_reconnect_with_last_event_id_replays_exactly_the_missed_events_of_the_trust(
    live_api: LiveApi, network: Network, study_c: str
) -> None:
    with live_api.sse(network["alert_a"]) as reader:
        first = live_api.raise_alert(network["rad_b"], network.study_uid)
        [seen] = reader.events(1)
    assert seen.data is not None
    assert seen.data["id"] == first["id"]
    assert seen.id is not None

    missed = []
    for n in range(3):
        missed.append(live_api.raise_alert(network["rad_b"], network.study_uid)["id"])
        live_api.raise_alert(network["rad_c"], study_c, finding=f"C finding {n}")

    with live_api.sse(network["alert_a"], last_event_id=seen.id) as reader:
        replayed = reader.events(3)
        live = live_api.raise_alert(network["rad_b"], network.study_uid)["id"]
        [after] = reader.events(1)
        marker = _no_more_events(reader, live_api, network["rad_b"], network.study_uid)
    assert [e.data["id"] for e in replayed if e.data] == missed
    assert [int(e.id or 0) for e in replayed] == sorted(int(e.id or 0) for e in replayed)
    assert after.data is not None
    assert after.data["id"] == live

    # The query parameter works too (for EventSource, which cannot set headers).
    with live_api.sse(network["manager_a"], params={"last_event_id": seen.id}) as reader:
        again = reader.events(5)
    assert [e.data["id"] for e in again if e.data] == [*missed, live, marker]


def test_an_admin_streams_every_trust_and_trust_c_sees_only_its_own(
    live_api: LiveApi, network: Network, study_c: str
) -> None:
    with (
        live_api.sse(network["admin"]) as admin,
        live_api.sse(network["alert_c"]) as trust_c,
    ):
        alert_a = live_api.raise_alert(network["rad_b"], network.study_uid)
        alert_c = live_api.raise_alert(network["rad_c"], study_c)
        both = admin.events(2)
        [only_c] = trust_c.events(1)
        _no_more_events(trust_c, live_api, network["rad_c"], study_c)
    assert [e.data["id"] for e in both if e.data] == [alert_a["id"], alert_c["id"]]
    assert only_c.data is not None
    assert only_c.data["id"] == alert_c["id"]
    assert only_c.data["site"]["code"] == TRUST_C


@pytest.mark.parametrize("who", ["rad_b", "rad_a", "rad_c"])
def test_radiologists_may_not_stream_alerts(live_api: LiveApi, network: Network, who: str) -> None:
    response = live_api.http.get("/api/v1/alerts/stream", headers=network[who])
    assert response.status_code == 403


@pytest.mark.parametrize("bad", ["abc", "-1", "1-0", "9" * 25])
def test_an_invalid_last_event_id_answers_422(
    live_api: LiveApi, network: Network, bad: str
) -> None:
    response = live_api.http.get(
        "/api/v1/alerts/stream", headers={**network["alert_a"], "Last-Event-ID": bad}
    )
    assert response.status_code == 422


def test_the_stream_needs_a_token(live_api: LiveApi) -> None:
    assert live_api.http.get("/api/v1/alerts/stream").status_code == 401


def test_the_stream_ends_when_the_caller_loses_access(
    live_api: LiveApi, network: Network, db: sessionmaker[Session]
) -> None:
    quick_streams(live_api.app, recheck_seconds=0)  # re-check at every read
    with live_api.sse(network["alert_a"]) as reader:
        with db() as session, session.begin():
            session.execute(update(User).where(User.username == "alert_a").values(active=False))
        assert reader.end()


def test_a_stream_without_redis_wakeups_still_delivers_by_polling(
    live_api: LiveApi, network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(url: str, wake: object, stopping: asyncio.Event, *args: object) -> None:
        await stopping.wait()

    monkeypatch.setattr(alert_stream, "listen_for_wakeups", never)
    with live_api.sse(network["alert_a"]) as reader:
        alert = live_api.raise_alert(network["rad_b"], network.study_uid)
        [event] = reader.events(1, timeout=5.0)
    assert event.data is not None
    assert event.data["id"] == alert["id"]


def test_a_last_event_id_is_read_as_an_alert_stream_position() -> None:
    assert parse_event_id(" 42 ") == 42
    for text in ["abc", "-1", "1-0", "4.2", "٤٢", "9" * 20]:
        with pytest.raises(InvalidEventId):
            parse_event_id(text)
