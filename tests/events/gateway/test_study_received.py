"""``study.received``: published once per study per committed batch, never in the way of ingest."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.events import StudyReceivedPublisher
from dicom_gateway.indexer import GroupCommitter, IndexRequest, SiteRef
from dicom_gateway.parse import read_header
from dicom_gateway.server import Gateway, build_gateway
from tests.events.conftest import stream_entries, unused_redis_url
from tests.gateway.conftest import send, write_files
from worklist.config import Settings
from worklist.db import make_engine
from worklist.events.bus import StreamEvent, decode, make_sync_redis
from worklist.models import Instance, Site
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances

WAIT_SECONDS = 5.0


def _study(count: int, local_id: str = "P1") -> StudySpec:
    return StudySpec(patient=PatientSpec(local_id=local_id), series=[SeriesSpec(count=count)])


def _site_id(db: sessionmaker[Session], code: str) -> int:
    with db() as session:
        site_id = session.scalar(select(Site.id).where(Site.code == code))
    assert site_id is not None
    return site_id


def _received(client: redis.Redis) -> list[StreamEvent]:
    events = [decode(entry_id, fields) for entry_id, fields in stream_entries(client)]
    return [e for e in events if e is not None and e.type == "study.received"]


def _wait_for_instances(client: redis.Redis, expected: Counter[str]) -> list[StreamEvent]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        events = _received(client)
        totals: Counter[str] = Counter()
        for event in events:
            totals[event.study_uid or ""] += event.data["instances"]
        if totals == expected or time.monotonic() > deadline:
            assert totals == expected
            return events
        time.sleep(0.05)


def _requests(tmp_path: Path, site: SiteRef, *specs: StudySpec) -> list[IndexRequest]:
    paths = write_files((ds for spec in specs for ds in iter_instances(spec)), tmp_path)
    return [
        IndexRequest(
            header=read_header(path, expected_sop_instance_uid=None),
            site=site,
            path=f"test/{path.name}",
            size_bytes=path.stat().st_size,
            actor="SITEA_PACS",
            address="127.0.0.1",
        )
        for path in paths
    ]


def test_instances_stored_through_the_gateway_are_announced_per_study(
    gateway: Gateway, db: sessionmaker[Session], redis_client: redis.Redis
) -> None:
    first, second = _study(3, "P1"), _study(2, "P2")
    results = send(gateway.port, [*iter_instances(first), *iter_instances(second)])
    assert [r.status for r in results] == [status.SUCCESS] * 5

    events = _wait_for_instances(redis_client, Counter({first.study_uid: 3, second.study_uid: 2}))
    assert {e.site_id for e in events} == {_site_id(db, "RXA")}
    # Batches (and the publisher's merge window) decide how many: never more than instances.
    per_study = Counter(e.study_uid for e in events)
    assert 1 <= per_study[first.study_uid] <= 3
    assert 1 <= per_study[second.study_uid] <= 2


def test_one_batch_gives_one_event_per_study(
    tmp_path: Path, db: sessionmaker[Session], sites: None, redis_url: str
) -> None:
    site = SiteRef(id=_site_id(db, "RXA"), code="RXA", default_priority=None)
    first, second = _study(3, "P1"), _study(2, "P2")
    publisher = StudyReceivedPublisher(make_sync_redis(redis_url), window_seconds=0)
    publisher.start()
    publisher.on_committed(_requests(tmp_path, site, first, second))
    publisher.stop()

    client = redis.Redis.from_url(redis_url)
    try:
        events = _received(client)
    finally:
        client.close()
    assert sorted((e.study_uid, e.data, e.site_id) for e in events) == sorted(
        [
            (first.study_uid, {"instances": 3}, site.id),
            (second.study_uid, {"instances": 2}, site.id),
        ]
    )


def test_the_committer_hook_sees_each_instance_once_and_only_after_its_commit(
    tmp_path: Path, db: sessionmaker[Session], sites: None, settings: Settings
) -> None:
    site = SiteRef(id=_site_id(db, "RXA"), code="RXA", default_priority=None)
    requests = _requests(tmp_path, site, _study(6, "P1"), _study(6, "P2"))
    seen: list[tuple[list[str], int]] = []

    def hook(batch: list[IndexRequest]) -> None:
        uids = [r.header.sop_instance_uid for r in batch]
        with db() as session:  # another connection: sees only committed rows
            committed = session.scalar(
                select(func.count())
                .select_from(Instance)
                .where(Instance.sop_instance_uid.in_(uids))
            )
        seen.append((uids, committed or 0))

    engine = make_engine(settings.require_database_url())
    committer = GroupCommitter(
        engine, turnaround=settings.turnaround_targets, max_batch=4, on_committed=hook
    )
    committer.start()
    barrier = threading.Barrier(len(requests))

    def submit(request: IndexRequest) -> None:
        barrier.wait()
        committer.submit(request).result(timeout=30)

    threads = [threading.Thread(target=submit, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    committer.stop()
    engine.dispose()

    reported = [uid for uids, _ in seen for uid in uids]
    assert sorted(reported) == sorted(r.header.sop_instance_uid for r in requests)
    assert all(committed == len(uids) for uids, committed in seen)
    assert all(len(uids) <= 4 for uids, _ in seen)


def test_the_gateway_stores_instances_while_redis_is_unreachable(
    settings: Settings, sites: None, db: sessionmaker[Session]
) -> None:
    offline = build_gateway(settings.model_copy(update={"redis_url": unused_redis_url()}))
    offline.start()
    try:
        spec = _study(2)
        results = send(offline.port, iter_instances(spec))
    finally:
        offline.shutdown()
    assert [r.status for r in results] == [status.SUCCESS] * 2
    with db() as session:
        stored = session.scalar(select(func.count()).select_from(Instance))
    assert stored == 2
