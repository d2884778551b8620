"""Order test helpers: orders applied as the HL7 listener and FHIR endpoint apply them (one
committed transaction each), the events they stage, studies pushed through the gateway."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_committed
from tests.dicomweb.conftest import Pushed, push
from worklist.audit import repository as audit
from worklist.config import Settings
from worklist.enums import OrderSource, PatientSource, Priority, StudyStatus
from worklist.events import WorklistEvent, staged
from worklist.models import Instance, Order, Site, Study
from worklist.orders.content import OrderContent, OrderControl, Referrer
from worklist.orders.service import Actor, AppliedOrder, apply_order
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec
from worklist.worker import promote_quiet_studies

RIS = Actor(name="RXA_RIS", kind=audit.ActorKind.NODE, address="127.0.0.1")
REQUESTED_AT = datetime(2030, 1, 6, 16, 45, tzinfo=UTC)
REFERRER = Referrer(
    name="JONES^SARAH^^^DR",
    code="C1234567",
    organisation="Riverside Medical Practice",
    organisation_code="Y01234",
)
# The order object of the API for ``new_order(...)`` with its defaults.
ORDER_OUT = {
    "placer_order_number": "PL-1",
    "filler_order_number": "FL-1",
    "procedure_code": "XCHEA",
    "procedure_name": "CT Head",
    "indication": "Fall on anticoagulants. ? intracranial bleed",
    "referrer": {
        "name": "JONES^SARAH^^^DR",
        "code": "C1234567",
        "organisation": "Riverside Medical Practice",
    },
    "patient_source": "emergency",
    "requested_at": "2030-01-06T16:45:00Z",
}


def new_order(
    accession: str, control: OrderControl = OrderControl.NEW, **fields: Any
) -> OrderContent:
    """A full order (every field the worklist shows) for ``accession``; ``fields`` override."""
    content = OrderContent(
        control=control,
        accession_number=accession,
        placer_order_number="PL-1",
        filler_order_number="FL-1",
        patient_local_id="RXA-001",
        procedure_code="XCHEA",
        procedure_coding_system="NICIP",
        procedure_name="CT Head",
        priority=Priority.URGENT,
        ris_priority="A",
        referrer=REFERRER,
        patient_source=PatientSource.EMERGENCY,
        indication="Fall on anticoagulants. ? intracranial bleed",
        requested_at=REQUESTED_AT,
    )
    return replace(content, **fields)


def bare_order(accession: str, control: OrderControl) -> OrderContent:
    """A message that says nothing but its control and accession (a cancel, a status)."""
    return OrderContent(control=control, accession_number=accession)


@dataclass(frozen=True)
class Applied:
    """What ``apply_order`` did, and the worklist events it staged for after the commit."""

    result: AppliedOrder
    events: list[WorklistEvent]

    def of_type(self, event_type: str) -> list[WorklistEvent]:
        """The staged events of one type."""
        return [event for event in self.events if event.type == event_type]


def apply(settings: Settings, site_id: int, content: OrderContent) -> Applied:
    """Apply ``content`` to the site in one committed transaction, as the listeners do."""

    async def work(session: AsyncSession) -> Applied:
        result = await apply_order(
            session,
            site_id=site_id,
            content=content,
            source=OrderSource.HL7,
            actor=RIS,
            turnaround_targets=settings.turnaround_targets,
        )
        return Applied(result=result, events=staged(session))

    return run_committed(settings.require_database_url(), work)


def site_id(db: sessionmaker[Session], code: str) -> int:
    """The id of the site with ``code``."""
    with db() as session:
        return session.scalars(select(Site.id).where(Site.code == code)).one()


def study_row(db: sessionmaker[Session], study_uid: str) -> Study:
    """The committed study row."""
    with db() as session:
        return session.scalars(select(Study).where(Study.study_uid == study_uid)).one()


def order_rows(db: sessionmaker[Session]) -> list[Order]:
    """Every committed order."""
    with db() as session:
        return list(session.scalars(select(Order).order_by(Order.id)))


def stored_instances(db: sessionmaker[Session], study_uid: str) -> int:
    """How many instances of the study are indexed."""
    with db() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Instance)
            .join(Study, Study.id == Instance.study_id)
            .where(Study.study_uid == study_uid)
        )
    return int(count or 0)


def study_spec(accession: str, *, series: int = 2, study_uid: str | None = None) -> StudySpec:
    """An RXA CT head with ``series`` series of two images."""
    spec = StudySpec(
        patient=PatientSpec("RXA-001", name="Smith^Anne", birth_date="19600214", sex="F"),
        series=[SeriesSpec(modality="CT", count=2) for _ in range(series)],
        accession_number=accession,
        description="CT head",
    )
    return replace(spec, study_uid=study_uid) if study_uid else spec


def push_study(port: int, spec: StudySpec, directory: Path) -> Pushed:
    """Send the study through the gateway (an SCU from RXA's PACS)."""
    return push(port, spec, directory)


def promote(settings: Settings, db: sessionmaker[Session], study_uid: str) -> int:
    """One pass of the worker's promotion (reading body parts from the stored files, as the
    worker's job does), run at the moment the study's images are quiet."""
    quiet_at = study_row(db, study_uid).last_instance_at + timedelta(
        seconds=settings.study_stable_seconds + 1
    )
    return run_committed(
        settings.require_database_url(),
        lambda session: promote_quiet_studies(
            session,
            stable_seconds=settings.study_stable_seconds,
            now=quiet_at,
            dicom_dir=settings.dicom_dir,
        ),
    )


def make_ready(db: sessionmaker[Session], study_uid: str) -> None:
    """Received in full: ready for reporting without waiting for the worker."""
    with db() as session, session.begin():
        session.execute(
            update(Study).where(Study.study_uid == study_uid).values(status=StudyStatus.READY)
        )
