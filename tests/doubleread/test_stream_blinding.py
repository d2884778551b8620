"""Blinding over SSE: the event stream of a radiologist who holds (or could still take) a
second read carries nothing of the first report -- neither its author nor its text."""

from __future__ import annotations

import json

import redis

from tests.doubleread.conftest import (
    FIRST,
    FIRST_REPORT,
    MANAGER,
    SECOND,
    THIRD,
    LiveApi,
    Network,
)
from tests.events.conftest import SseEvent, SseReader, quick_streams
from worklist.events import EventType, WorklistEvent
from worklist.events.bus import publish_sync

MARKER = "marker.uid"


def _until_marker(reader: SseReader, network: Network, client: redis.Redis) -> list[SseEvent]:
    """Every event before a marker published now (the stream keeps its order)."""
    publish_sync(
        client, [WorklistEvent(EventType.STUDY_UPDATED, network.sites["NORTH"].id, MARKER)]
    )
    events = []
    while True:
        event = reader.next_event(timeout=30)
        assert event is not None, f"no marker after {events}"
        if event.data and event.data.get("study_uid") == MARKER:
            return events
        events.append(event)


def _of(events: list[SseEvent], uid: str, kind: str) -> list[dict[str, object]]:
    return [
        e.data["data"] for e in events if e.event == kind and e.data and e.data["study_uid"] == uid
    ]


def _leaks(events: list[SseEvent]) -> bool:
    text = json.dumps([e.data for e in events])
    return FIRST in text or FIRST_REPORT in text


def test_the_holders_replay_and_live_events_carry_nothing_of_the_first_report(
    network: Network, live_api: LiveApi, settings_redis: redis.Redis
) -> None:
    network.set_rules({"share": 1})
    uid = network.add_study()
    network.report(uid)
    read_id = network.read_of(uid)
    assert network.claim(SECOND, read_id).status_code == 200

    with live_api.sse(network.headers[SECOND], last_event_id="0-0") as reader:
        addendum = {"text": "Compare with the 2024 mammogram."}
        url = f"/api/v1/studies/{uid}/report/addenda"
        assert network.send("POST", FIRST, url, json=addendum).status_code == 201
        seen = _until_marker(reader, network, settings_redis)
    assert _of(seen, uid, EventType.REPORT_FINALISED) == [{}]
    assert _of(seen, uid, EventType.REPORT_AMENDED) == [{}]
    assert _of(seen, uid, EventType.DOUBLE_READ_CREATED) == [{"id": read_id, "kind": "double_read"}]
    assert not _leaks(seen)

    # A colleague who can no longer take the read is not blinded.
    with live_api.sse(network.headers[THIRD], last_event_id="0-0") as reader:
        colleague = _until_marker(reader, network, settings_redis)
    [finalised] = _of(colleague, uid, EventType.REPORT_FINALISED)
    assert finalised["author"] == FIRST

    # Submitted: the reader's stream shows the report's events again.
    assert network.submit(SECOND, read_id, "1").status_code == 200
    with live_api.sse(network.headers[SECOND], last_event_id="0-0") as reader:
        after = _until_marker(reader, network, settings_redis)
    assert _of(after, uid, EventType.REPORT_FINALISED)[0]["author"] == FIRST


def test_a_stream_open_when_the_report_is_signed_hides_it_from_those_who_may_take_the_read(
    network: Network, live_api: LiveApi, settings_redis: redis.Redis
) -> None:
    quick_streams(live_api.app, forced_recheck_seconds=0.0)
    network.set_rules({"share": 1})
    uid = network.add_study()
    with (
        live_api.sse(network.headers[SECOND]) as second,
        live_api.sse(network.headers[MANAGER]) as manager,
    ):
        network.report(uid)
        seen = _until_marker(second, network, settings_redis)
        managed = _until_marker(manager, network, settings_redis)
    assert _of(seen, uid, EventType.REPORT_FINALISED) == [{}]
    assert not _leaks(seen)
    assert _of(managed, uid, EventType.REPORT_FINALISED)[0]["author"] == FIRST
