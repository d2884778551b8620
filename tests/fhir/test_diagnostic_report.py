"""The FHIR mapping itself: names, genders, identifiers, times, text (no database needed)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.fhir.conftest import assert_valid_diagnostic_report, identifiers
from worklist.enums import Priority, ReportStatus, StudyStatus
from worklist.models import Patient, Report, ReportAddendum, Site, Study
from worklist.reports.fhir import Reader, diagnostic_report, human_name

SIGNED_AT = datetime(2030, 1, 7, 9, 15, 30, 123456, tzinfo=UTC)
RECEIVED = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
USERS = {
    1: Reader(username="dr.author", name="Dr Ann Author", registration="GMC1234567"),
    2: Reader(username="dr.second"),
}


def build(
    *,
    sex: str | None = "F",
    nhs_number: str | None = "9434765919",
    name: str = "DOE^JANE",
    study_datetime: datetime | None = None,
    accession: str | None = "ACC1",
    status: ReportStatus = ReportStatus.FINAL,
    addenda: list[ReportAddendum] | None = None,
    readers: dict[int, Reader] | None = None,
) -> dict[str, Any]:
    """A resource from in-memory rows."""
    site = Site(id=3, code="RXA", name="Trust A")
    patient = Patient(
        id=5,
        site_id=3,
        local_id="L77",
        nhs_number=nhs_number,
        name=name,
        birth_date=date(1970, 1, 1),
        sex=sex,
    )
    study = Study(
        id=8,
        study_uid="1.2.826.0.1.3680043.10.1.8",
        site_id=3,
        patient_id=5,
        accession_number=accession,
        description=None,
        study_datetime=study_datetime,
        modalities=["CT", "SR"],
        priority=Priority.ROUTINE,
        due_at=RECEIVED,
        status=StudyStatus.REPORTED,
        received_at=RECEIVED,
        last_instance_at=RECEIVED,
        series_count=2,
        instance_count=120,
        flags=[],
    )
    report = Report(
        id=11,
        study_id=8,
        status=status,
        text="Normal study.",
        version=3,
        author_id=1,
        created_at=RECEIVED,
        updated_at=SIGNED_AT,
        finalised_at=SIGNED_AT,
        finalised_by_id=1,
    )
    return diagnostic_report(
        report=report,
        addenda=addenda or [],
        study=study,
        patient=patient,
        site=site,
        readers=readers or USERS,
    )


@pytest.mark.parametrize(
    ("sex", "gender"),
    [
        ("M", "male"),
        ("F", "female"),
        ("O", "other"),
        ("m", "male"),
        (None, "unknown"),
        ("X", "unknown"),
    ],
)
def test_dicom_sex_maps_to_fhir_gender(sex: str | None, gender: str) -> None:
    resource = build(sex=sex)

    [patient] = [r for r in resource["contained"] if r["resourceType"] == "Patient"]
    assert patient["gender"] == gender
    assert_valid_diagnostic_report(resource)


def test_dicom_person_names_become_human_names() -> None:
    assert human_name("SMITH^JOHN^PETER^DR^JR") == {
        "use": "official",
        "text": "JOHN PETER SMITH",
        "family": "SMITH",
        "given": ["JOHN", "PETER"],
        "prefix": ["DR"],
        "suffix": ["JR"],
    }
    assert human_name("Yamada^Tarou=山田^太郎") == {
        "use": "official",
        "text": "Tarou Yamada",
        "family": "Yamada",
        "given": ["Tarou"],
    }
    assert human_name("") is None
    assert human_name("^^") is None


def test_a_patient_without_nhs_number_is_identified_by_the_local_id_of_the_trust() -> None:
    resource = build(nhs_number=None, name="")

    assert identifiers(resource, "Patient") == {"urn:imaging-network:site:RXA:patient-id": "L77"}
    [patient] = [r for r in resource["contained"] if r["resourceType"] == "Patient"]
    assert "name" not in patient
    assert_valid_diagnostic_report(resource)


def test_the_study_is_identified_by_uid_and_accession_number() -> None:
    resource = build()

    [study] = [r for r in resource["contained"] if r["resourceType"] == "ImagingStudy"]
    uid, accession = study["identifier"]
    assert uid == {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.10.1.8"}
    assert accession["type"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}
    ]
    assert accession["value"] == "ACC1"
    assert [m["code"] for m in study["modality"]] == ["CT", "SR"]
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (2, 120)
    assert len(build(accession=None)["contained"][1]["identifier"]) == 1


def test_effective_time_is_the_study_time_else_its_arrival() -> None:
    acquired = RECEIVED - timedelta(hours=1)

    assert build(study_datetime=acquired)["effectiveDateTime"] == "2030-01-07T08:00:00.000Z"
    assert build()["effectiveDateTime"] == "2030-01-07T09:00:00.000Z"


def test_a_final_report_is_issued_when_signed() -> None:
    resource = build()

    assert resource["status"] == "final"
    assert resource["issued"] == "2030-01-07T09:15:30.123Z"
    assert resource["conclusion"] == "Normal study."
    assert resource["code"]["text"] == "Imaging study"
    assert resource["performer"] == [{"reference": "#practitioner-1", "display": "Dr Ann Author"}]
    assert_valid_diagnostic_report(resource)


def test_an_amended_report_is_issued_at_its_last_addendum_with_every_addendum_dated() -> None:
    first = ReportAddendum(
        author_id=1, text="Addendum one.", created_at=SIGNED_AT + timedelta(hours=1)
    )
    second = ReportAddendum(
        author_id=2, text="Addendum two.", created_at=SIGNED_AT + timedelta(hours=2)
    )

    resource = build(status=ReportStatus.AMENDED, addenda=[first, second])

    assert resource["status"] == "amended"
    assert resource["issued"] == "2030-01-07T11:15:30.123Z"
    assert resource["conclusion"] == (
        "Normal study.\n\n"
        "--- ADDENDUM 1 (2030-01-07T10:15:30.123Z, Dr Ann Author) ---\nAddendum one.\n\n"
        "--- ADDENDUM 2 (2030-01-07T11:15:30.123Z, dr.second) ---\nAddendum two."
    )
    assert base64.b64decode(resource["presentedForm"][0]["data"]).decode() == resource["conclusion"]
    assert resource["resultsInterpreter"] == [
        {"reference": "#practitioner-1", "display": "Dr Ann Author"},
        {"reference": "#practitioner-2", "display": "dr.second"},
    ]
    assert_valid_diagnostic_report(resource)


def test_a_draft_has_no_fhir_form() -> None:
    with pytest.raises(ValueError, match="draft"):
        build(status=ReportStatus.DRAFT)


def test_the_interpreter_is_a_contained_practitioner_with_name_and_gmc_number() -> None:
    resource = build()

    assert resource["resultsInterpreter"] == [
        {"reference": "#practitioner-1", "display": "Dr Ann Author"}
    ]
    [practitioner] = [r for r in resource["contained"] if r["resourceType"] == "Practitioner"]
    assert practitioner["id"] == "practitioner-1"
    assert practitioner["name"] == [{"use": "official", "text": "Dr Ann Author"}]
    assert identifiers(resource, "Practitioner") == {
        "https://fhir.hl7.org.uk/Id/gmc-number": "1234567",
        "urn:imaging-network:user": "dr.author",
    }
    parsed = assert_valid_diagnostic_report(resource)
    assert parsed.resultsInterpreter is not None
    assert parsed.resultsInterpreter[0].reference == "#practitioner-1"


def test_an_hcpc_registered_reporter_is_identified_by_the_hcpc_number() -> None:
    first = ReportAddendum(author_id=2, text="Addendum.", created_at=SIGNED_AT)
    readers = {**USERS, 2: Reader(username="rg.two", name="Ray Grapher", registration="RA12345")}

    resource = build(status=ReportStatus.AMENDED, addenda=[first], readers=readers)

    practitioners = [r for r in resource["contained"] if r["resourceType"] == "Practitioner"]
    assert [p["identifier"][0] for p in practitioners] == [
        {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "1234567"},
        {"system": "https://fhir.hl7.org.uk/Id/hcpc-number", "value": "RA12345"},
    ]
    assert_valid_diagnostic_report(resource)


def test_a_reader_without_a_profile_is_named_by_username() -> None:
    resource = build(readers={1: Reader(username="dr.author")})

    [practitioner] = [r for r in resource["contained"] if r["resourceType"] == "Practitioner"]
    assert "name" not in practitioner
    assert practitioner["identifier"] == [
        {"system": "urn:imaging-network:user", "value": "dr.author"}
    ]
    assert resource["resultsInterpreter"] == [
        {"reference": "#practitioner-1", "display": "dr.author"}
    ]
    assert_valid_diagnostic_report(resource)
