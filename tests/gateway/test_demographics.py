"""A study whose demographics differ from its patient's (same local ID) is flagged, audited."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.gateway.conftest import SITE_B_AE, send
from worklist.enums import AuditAction, StudyFlag
from worklist.models import AuditEvent, Patient, Study
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances


def _study(local_id: str = "MRN-7", count: int = 1, **patient: str) -> StudySpec:
    return StudySpec(
        patient=PatientSpec(local_id, **patient),  # type: ignore[arg-type]
        series=[SeriesSpec(count=count)],
    )


def _push(port: int, *studies: StudySpec, calling_ae: str | None = None) -> None:
    for spec in studies:
        kwargs = {"calling_ae": calling_ae} if calling_ae else {}
        assert {r.status for r in send(port, iter_instances(spec), **kwargs)} == {0}


def _studies(db: sessionmaker[Session]) -> dict[str, Study]:
    with db() as session:
        return {s.study_uid: s for s in session.scalars(select(Study))}


def _mismatch_audits(db: sessionmaker[Session]) -> list[AuditEvent]:
    with db() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == AuditAction.STUDY_DEMOGRAPHIC_MISMATCH
                )
            )
        )


def test_second_study_with_same_local_id_and_another_name_is_flagged_and_audited(
    gateway: Gateway, db: sessionmaker[Session]
) -> None:
    first = _study(name="DOE^JANE")
    second = _study(name="SMITH^MARY", count=3)
    _push(gateway.port, first, second)
    studies = _studies(db)
    assert studies[first.study_uid].flags == []
    flagged = studies[second.study_uid]
    assert flagged.flags == [StudyFlag.DEMOGRAPHIC_MISMATCH]
    assert flagged.patient_id == studies[first.study_uid].patient_id
    assert flagged.received_patient_name == "SMITH^MARY"
    with db() as session:
        patient = session.get(Patient, flagged.patient_id)
    assert patient is not None
    assert patient.name == "DOE^JANE"  # the patient row keeps its demographics
    audits = _mismatch_audits(db)
    assert [(a.study_uid, a.actor, a.detail) for a in audits] == [
        (second.study_uid, "SITEA_PACS", {"fields": ["name"]})
    ]


def test_same_name_written_differently_is_not_a_mismatch(
    gateway: Gateway, db: sessionmaker[Session]
) -> None:
    first = _study(name="DOE^JANE")
    again = _study(name="doe^jane^^")
    _push(gateway.port, first, again)
    assert [s.flags for s in _studies(db).values()] == [[], []]
    assert _mismatch_audits(db) == []


def test_birth_date_or_sex_mismatch_is_flagged_naming_the_fields(
    gateway: Gateway, db: sessionmaker[Session]
) -> None:
    first = _study(birth_date="19700101", sex="F")
    other_birth = _study(birth_date="19810202", sex="F")
    other_sex = _study(birth_date="19700101", sex="M")
    _push(gateway.port, first, other_birth, other_sex)
    studies = _studies(db)
    assert studies[first.study_uid].flags == []
    assert studies[other_birth.study_uid].flags == [StudyFlag.DEMOGRAPHIC_MISMATCH]
    assert studies[other_birth.study_uid].received_patient_birth_date == date(1981, 2, 2)
    assert studies[other_sex.study_uid].flags == [StudyFlag.DEMOGRAPHIC_MISMATCH]
    assert studies[other_sex.study_uid].received_patient_sex == "M"
    assert {a.study_uid: a.detail["fields"] for a in _mismatch_audits(db)} == {
        other_birth.study_uid: ["birth_date"],
        other_sex.study_uid: ["sex"],
    }


def test_same_local_id_at_another_site_is_another_patient(
    gateway: Gateway, db: sessionmaker[Session]
) -> None:
    _push(gateway.port, _study(name="DOE^JANE"))
    _push(gateway.port, _study(name="SMITH^MARY"), calling_ae=SITE_B_AE)
    assert [s.flags for s in _studies(db).values()] == [[], []]
