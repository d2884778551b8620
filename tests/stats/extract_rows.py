"""A small fixed month of examinations for the extract's tests (API and CLI).

July 2030, British Summer Time (UTC+1): the month's local bounds are 2030-06-30 23:00 UTC
and 2030-07-31 23:00 UTC, so an examination at 23:30 UTC on 30 June is in July, and one at
23:30 UTC on 31 July is in August.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from tests.api.conftest import add_patient, add_site, add_study, add_user
from worklist.enums import OrderSource, PatientSource, ReportStatus, Role, StudyStatus
from worklist.models import Order, Report, Site, Study

MONTH = "2030-07"
NORTH = "NORTH"
SOUTH = "SOUTH"
HEADER = [
    "site_code",
    "accession_number",
    "imaging_code",
    "patient_source",
    "referrer_code",
    "referring_organisation_code",
    "request_date",
    "request_received_date",
    "test_date",
    "report_issue_date",
]
# Every expected row of the month, in test-time order, keyed by accession number.
ROWS = {
    "N-EARLY": ["NORTH", "N-EARLY", "", "", "", "", "", "", "2030-07-01", ""],
    "N-ORDERED": [
        "NORTH",
        "N-ORDERED",
        "XCHES",
        "gp",
        "G1234567",
        "A81001",
        "2030-07-03",
        "2030-07-03",
        "2030-07-10",
        "2030-07-12",
    ],
    "S-MID": ["SOUTH", "S-MID", "", "", "", "", "", "", "2030-07-15", "2030-07-16"],
    "N-ARRIVED": ["NORTH", "N-ARRIVED", "", "", "", "", "", "", "2030-07-20", ""],
}


def at(text: str) -> datetime:
    """A UTC instant from ``YYYY-MM-DD HH:MM``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Month:
    """The committed world: sites by code."""

    sites: dict[str, Site]


def add_exam(
    session: Session,
    site: Site,
    accession: str,
    *,
    study_datetime: datetime | None,
    received_at: datetime,
    status: StudyStatus = StudyStatus.READY,
) -> Study:
    """One study of a new patient of ``site``."""
    patient = add_patient(session, site)
    return add_study(
        session,
        patient,
        accession_number=accession,
        study_datetime=study_datetime,
        received_at=received_at,
        status=status,
    )


def add_order(session: Session, study: Study, **fields: Any) -> Order:
    """The study's RIS order."""
    order = Order(
        site_id=study.site_id,
        accession_number=study.accession_number,
        source=OrderSource.HL7.value,
        **fields,
    )
    session.add(order)
    session.flush()
    study.order_id = order.id
    session.flush()
    return order


def add_report(
    session: Session,
    study: Study,
    author_id: int,
    status: ReportStatus,
    finalised_at: datetime | None = None,
) -> Report:
    """The study's report (signed ones with their time: the trigger keeps it unchanged)."""
    report = Report(
        study_id=study.id,
        status=status,
        text="No acute findings.",
        version=1,
        author_id=author_id,
        finalised_at=finalised_at,
        finalised_by_id=author_id if finalised_at else None,
    )
    session.add(report)
    session.flush()
    return report


def build_month(session: Session) -> Month:
    """Two trusts, their users, and the month's examinations plus ones just outside it."""
    sites = {code: add_site(session, code) for code in (NORTH, SOUTH)}
    add_user(session, "ada", Role.ADMIN)
    add_user(session, "nora", Role.MANAGER, NORTH)
    add_user(session, "rad", Role.RADIOLOGIST, NORTH, SOUTH)
    add_user(session, "bell", Role.ALERT_CLIENT, NORTH)
    author = add_user(session, "writer", Role.RADIOLOGIST, NORTH, SOUTH)
    north, south = sites[NORTH], sites[SOUTH]

    # 00:30 on 1 July, local: July, though June in UTC. Its report is only a draft.
    early = add_exam(
        session,
        north,
        "N-EARLY",
        study_datetime=at("2030-06-30 23:30"),
        received_at=at("2030-07-01 08:00"),
    )
    add_report(session, early, author.id, ReportStatus.DRAFT)
    ordered = add_exam(
        session,
        north,
        "N-ORDERED",
        study_datetime=at("2030-07-10 09:00"),
        received_at=at("2030-07-10 09:40"),
        status=StudyStatus.REPORTED,
    )
    add_order(
        session,
        ordered,
        procedure_code="XCHES",
        procedure_coding_system="NICIP",
        patient_source=PatientSource.GP.value,
        referrer_code="G1234567",
        referrer_organisation_code="A81001",
        # 00:30 local on 3 July; received that morning.
        requested_at=at("2030-07-02 23:30"),
        received_at=at("2030-07-03 08:00"),
    )
    # Signed 00:15 local on the 12th.
    add_report(session, ordered, author.id, ReportStatus.FINAL, at("2030-07-11 23:15"))
    mid = add_exam(
        session,
        south,
        "S-MID",
        study_datetime=at("2030-07-15 12:00"),
        received_at=at("2030-07-15 12:30"),
        status=StudyStatus.REPORTED,
    )
    add_report(session, mid, author.id, ReportStatus.AMENDED, at("2030-07-16 10:00"))
    # No study date/time: the test date is its first arrival.
    add_exam(session, north, "N-ARRIVED", study_datetime=None, received_at=at("2030-07-20 08:00"))

    # Outside: 00:30 on 1 August local; 23:59 on 30 June local; a cancelled one.
    add_exam(
        session,
        north,
        "N-AUGUST",
        study_datetime=at("2030-07-31 23:30"),
        received_at=at("2030-08-01 07:00"),
    )
    add_exam(
        session,
        north,
        "N-JUNE",
        study_datetime=at("2030-06-30 22:59"),
        received_at=at("2030-07-01 07:00"),
    )
    add_exam(
        session,
        north,
        "N-CANCELLED",
        study_datetime=at("2030-07-12 10:00"),
        received_at=at("2030-07-12 10:10"),
        status=StudyStatus.CANCELLED,
    )
    session.flush()
    return Month(sites=sites)
