"""An order and the first images of its study arriving at the same moment still match.

Each side commits after looking for the other, so without a common lock both could look
while the other is uncommitted and miss it. Each test holds one side's transaction open
until the other is seen waiting on the accession's advisory lock, then commits it."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.indexer import IndexRequest, SiteRef, index_batch
from dicom_gateway.parse import InstanceHeader
from tests.api.conftest import NORTH, sites
from tests.conftest import run_committed
from tests.orders.support import RIS, apply, new_order, order_rows, study_row
from worklist.config import Settings
from worklist.enums import OrderSource
from worklist.models import Site
from worklist.orders.service import apply_order
from worklist.synthetic import new_uid

__all__ = ["sites"]

CT = "1.2.840.10008.5.1.4.1.1.2"
WAIT_SECONDS = 15.0


def _request(site: Site, accession: str) -> IndexRequest:
    study_uid, sop_uid = new_uid(), new_uid()
    header = InstanceHeader(
        sop_class_uid=CT,
        sop_instance_uid=sop_uid,
        study_uid=study_uid,
        series_uid=new_uid(),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        patient_id="P-TOGETHER",
        patient_name="DOE^JANE",
        birth_date=date(1970, 1, 1),
        sex="F",
        nhs_number=None,
        accession_number=accession,
        study_description="CT HEAD",
        study_datetime=None,
        modality="CT",
        series_description=None,
        series_number=1,
        instance_number=1,
        requested_priority=None,
    )
    return IndexRequest(
        header=header,
        site=SiteRef(id=site.id, code=site.code, default_priority=None),
        path=f"{site.code}/{study_uid}/{sop_uid}.dcm",
        size_bytes=1,
        actor="NORTH_PACS",
        address="127.0.0.1",
    )


def _advisory_waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar_one()
        )


def _until_waiting(engine: Engine, other: Future[Any]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while _advisory_waiters(engine) < 1:
        assert time.monotonic() < deadline, "the second side never waited on the first"
        assert not other.done(), other.result()
        time.sleep(0.01)


def test_images_indexed_while_a_new_order_commits_take_the_order(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings, engine: Engine
) -> None:
    site, url = sites[NORTH], settings.require_database_url()
    written, release = threading.Event(), threading.Event()

    async def order_held_open(session: AsyncSession) -> None:
        await apply_order(
            session,
            site_id=site.id,
            content=new_order("A-TOGETHER"),
            source=OrderSource.HL7,
            actor=RIS,
            turnaround_targets=settings.turnaround_targets,
        )
        written.set()
        await asyncio.to_thread(release.wait, WAIT_SECONDS)

    request = _request(site, "A-TOGETHER")

    def index() -> None:
        with db() as session, session.begin():
            index_batch(session, [request], turnaround=settings.turnaround_targets)

    with ThreadPoolExecutor(2) as pool:
        ordering = pool.submit(run_committed, url, order_held_open)
        assert written.wait(WAIT_SECONDS), "the order was not applied"
        indexing = pool.submit(index)
        _until_waiting(engine, indexing)
        release.set()
        ordering.result(timeout=30)
        indexing.result(timeout=30)

    [order] = order_rows(db)
    assert study_row(db, request.header.study_uid).order_id == order.id


def test_an_order_applied_while_the_first_images_commit_finds_their_study(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings, engine: Engine
) -> None:
    site = sites[NORTH]
    indexed, release = threading.Event(), threading.Event()
    request = _request(site, "A-TOGETHER")

    def index_held_open() -> None:
        with db() as session, session.begin():
            index_batch(session, [request], turnaround=settings.turnaround_targets)
            indexed.set()
            assert release.wait(WAIT_SECONDS), "never released"

    with ThreadPoolExecutor(2) as pool:
        indexing = pool.submit(index_held_open)
        assert indexed.wait(WAIT_SECONDS), "the images were not indexed"
        ordering = pool.submit(apply, settings, site.id, new_order("A-TOGETHER"))
        _until_waiting(engine, ordering)
        release.set()
        indexing.result(timeout=30)
        applied = ordering.result(timeout=30).result

    assert applied.study_uids == (request.header.study_uid,)
    assert study_row(db, request.header.study_uid).order_id == applied.order_id
