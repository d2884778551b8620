"""The study lifecycle: every status change, allowed or refused, as one table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from worklist.enums import Priority, StudyFlag, StudyStatus
from worklist.models import Site, Study
from worklist.studies import lifecycle
from worklist.studies.lifecycle import StudyEvent, TransitionNotAllowed

RECEIVING, READY = StudyStatus.RECEIVING, StudyStatus.READY
IN_PROGRESS, REPORTED = StudyStatus.IN_PROGRESS, StudyStatus.REPORTED
CANCELLED = StudyStatus.CANCELLED
NEW_IMAGES = StudyFlag.NEW_IMAGES_AFTER_REPORT
DISCREPANCY = StudyFlag.MAJOR_DISCREPANCY
REFUSED = None

# (event, status before) -> status after, or REFUSED: every cell written out.
EXPECTED: dict[tuple[StudyEvent, StudyStatus], StudyStatus | None] = {
    (StudyEvent.IMAGES_ARRIVED, RECEIVING): RECEIVING,
    (StudyEvent.IMAGES_ARRIVED, READY): RECEIVING,
    (StudyEvent.IMAGES_ARRIVED, IN_PROGRESS): IN_PROGRESS,
    (StudyEvent.IMAGES_ARRIVED, REPORTED): RECEIVING,
    (StudyEvent.BECAME_QUIET, RECEIVING): READY,
    (StudyEvent.BECAME_QUIET, READY): REFUSED,
    (StudyEvent.BECAME_QUIET, IN_PROGRESS): REFUSED,
    (StudyEvent.BECAME_QUIET, REPORTED): REFUSED,
    (StudyEvent.CLAIMED, RECEIVING): REFUSED,
    (StudyEvent.CLAIMED, READY): IN_PROGRESS,
    (StudyEvent.CLAIMED, IN_PROGRESS): IN_PROGRESS,
    (StudyEvent.CLAIMED, REPORTED): REFUSED,
    (StudyEvent.CLAIM_ENDED, RECEIVING): RECEIVING,
    (StudyEvent.CLAIM_ENDED, READY): READY,
    (StudyEvent.CLAIM_ENDED, IN_PROGRESS): READY,
    (StudyEvent.CLAIM_ENDED, REPORTED): REFUSED,
    (StudyEvent.REPORT_SIGNED, RECEIVING): REFUSED,
    (StudyEvent.REPORT_SIGNED, READY): REFUSED,
    (StudyEvent.REPORT_SIGNED, IN_PROGRESS): REPORTED,
    (StudyEvent.REPORT_SIGNED, REPORTED): REFUSED,
    (StudyEvent.NEW_IMAGES_ANSWERED, RECEIVING): REPORTED,
    (StudyEvent.NEW_IMAGES_ANSWERED, READY): REPORTED,
    (StudyEvent.NEW_IMAGES_ANSWERED, IN_PROGRESS): REPORTED,
    (StudyEvent.NEW_IMAGES_ANSWERED, REPORTED): REPORTED,
    (StudyEvent.IMAGES_ARRIVED, CANCELLED): CANCELLED,
    (StudyEvent.BECAME_QUIET, CANCELLED): REFUSED,
    (StudyEvent.CLAIMED, CANCELLED): REFUSED,
    (StudyEvent.CLAIM_ENDED, CANCELLED): CANCELLED,
    (StudyEvent.REPORT_SIGNED, CANCELLED): REFUSED,
    (StudyEvent.NEW_IMAGES_ANSWERED, CANCELLED): REFUSED,
    (StudyEvent.ORDER_CANCELLED, RECEIVING): CANCELLED,
    (StudyEvent.ORDER_CANCELLED, READY): CANCELLED,
    (StudyEvent.ORDER_CANCELLED, IN_PROGRESS): CANCELLED,
    (StudyEvent.ORDER_CANCELLED, REPORTED): REPORTED,
    (StudyEvent.ORDER_CANCELLED, CANCELLED): CANCELLED,
    (StudyEvent.ORDER_REINSTATED, RECEIVING): RECEIVING,
    (StudyEvent.ORDER_REINSTATED, READY): READY,
    (StudyEvent.ORDER_REINSTATED, IN_PROGRESS): IN_PROGRESS,
    (StudyEvent.ORDER_REINSTATED, REPORTED): REPORTED,
    (StudyEvent.ORDER_REINSTATED, CANCELLED): RECEIVING,
    (StudyEvent.DISCREPANCY_FOUND, RECEIVING): RECEIVING,
    (StudyEvent.DISCREPANCY_FOUND, READY): READY,
    (StudyEvent.DISCREPANCY_FOUND, IN_PROGRESS): IN_PROGRESS,
    (StudyEvent.DISCREPANCY_FOUND, REPORTED): REPORTED,
    (StudyEvent.DISCREPANCY_FOUND, CANCELLED): CANCELLED,
    (StudyEvent.ADDENDUM_ADDED, RECEIVING): RECEIVING,
    (StudyEvent.ADDENDUM_ADDED, READY): READY,
    (StudyEvent.ADDENDUM_ADDED, IN_PROGRESS): IN_PROGRESS,
    (StudyEvent.ADDENDUM_ADDED, REPORTED): REPORTED,
    (StudyEvent.ADDENDUM_ADDED, CANCELLED): CANCELLED,
}


def test_the_table_covers_every_event_and_status() -> None:
    assert set(EXPECTED) == {(e, s) for e in StudyEvent for s in StudyStatus}


@pytest.mark.parametrize(("event", "before"), list(EXPECTED))
def test_transition(event: StudyEvent, before: StudyStatus) -> None:
    after = EXPECTED[(event, before)]
    study = Study(status=before, flags=[])

    if after is REFUSED:
        assert not lifecycle.allows(before, event)
        with pytest.raises(TransitionNotAllowed, match=f"a {before.value} study cannot be"):
            lifecycle.apply(study, event)
        assert study.status is before
    else:
        assert lifecycle.allows(before, event)
        assert lifecycle.apply(study, event) is after
        assert study.status is after


def test_images_on_a_reported_study_flag_it_and_an_answer_clears_the_flag() -> None:
    study = Study(status=REPORTED, flags=[])

    lifecycle.apply(study, StudyEvent.IMAGES_ARRIVED)
    assert study.flags == [NEW_IMAGES]
    lifecycle.apply(study, StudyEvent.IMAGES_ARRIVED)
    assert study.flags == [NEW_IMAGES]  # once
    lifecycle.apply(study, StudyEvent.NEW_IMAGES_ANSWERED)
    assert study.flags == []


def test_signing_clears_the_new_images_flag_and_keeps_others() -> None:
    study = Study(status=IN_PROGRESS, flags=[NEW_IMAGES, "other"])

    lifecycle.apply(study, StudyEvent.REPORT_SIGNED)

    assert study.flags == ["other"]


@pytest.mark.parametrize("before", list(StudyStatus))
def test_a_major_discrepancy_flags_the_study_once_without_changing_its_status(
    before: StudyStatus,
) -> None:
    study = Study(status=before, flags=["other"])

    lifecycle.apply(study, StudyEvent.DISCREPANCY_FOUND)
    lifecycle.apply(study, StudyEvent.DISCREPANCY_FOUND)

    assert study.status is before
    assert study.flags == ["other", DISCREPANCY]


def test_the_next_addendum_clears_a_major_discrepancy_and_keeps_other_flags() -> None:
    study = Study(status=REPORTED, flags=[DISCREPANCY, "other"])

    lifecycle.apply(study, StudyEvent.ADDENDUM_ADDED)

    assert study.status is REPORTED
    assert study.flags == ["other"]


def test_an_addendum_answering_new_images_clears_both_flags() -> None:
    study = Study(status=RECEIVING, flags=[DISCREPANCY, NEW_IMAGES])

    lifecycle.apply(study, StudyEvent.NEW_IMAGES_ANSWERED)

    assert study.status is REPORTED
    assert study.flags == []


def test_bulk_updates_only_exist_for_events_that_do_the_same_to_every_study() -> None:
    lifecycle.bulk_update(StudyEvent.BECAME_QUIET)
    lifecycle.bulk_update(StudyEvent.CLAIM_ENDED)
    with pytest.raises(ValueError, match="depends on the status"):
        lifecycle.bulk_update(StudyEvent.IMAGES_ARRIVED)
    with pytest.raises(ValueError, match="depends on the status"):
        lifecycle.bulk_update(StudyEvent.DISCREPANCY_FOUND)


def _instance(site_id: int, sop: str) -> dict[str, object]:
    return {
        "site_id": site_id,
        "patient_id": "P1",
        "patient_name": "DOE^JANE",
        "study_uid": "1.2.3",
        "priority": "routine",
        "due_at": "2026-01-08T00:00:00+00:00",
        "series_uid": "1.2.3.1",
        "modality": "CT",
        "sop_instance_uid": sop,
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
        "path": f"/nowhere/{sop}.dcm",
        "size_bytes": 1,
        "actor": "PACS",
        "address": "127.0.0.1",
    }


@pytest.mark.parametrize("before", list(StudyStatus))
def test_the_gateways_sql_applies_images_arrived_as_the_table_says(
    db: sessionmaker[Session], before: StudyStatus
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    index = text("SELECT index_instances(CAST(:batch AS jsonb), :at)")
    with db.begin() as session:
        site = Site(code="RXA", name="A", default_priority=Priority.ROUTINE)
        session.add(site)
        session.flush()
        session.execute(index, {"batch": json.dumps([_instance(site.id, "1.2.3.1.1")]), "at": at})
        session.execute(text("UPDATE studies SET status = :s"), {"s": before.value})
        session.execute(index, {"batch": json.dumps([_instance(site.id, "1.2.3.1.2")]), "at": at})
    with db() as session:
        study = session.scalars(select(Study)).one()
    expected = Study(status=before, flags=[])
    lifecycle.apply(expected, StudyEvent.IMAGES_ARRIVED)

    assert (study.status, study.flags) == (expected.status, expected.flags)
