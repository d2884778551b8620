"""A signed report as a FHIR R4 ``DiagnosticReport``: what the originating trust receives.

The resource is self-contained: the patient, the imaging study and the radiologists are
``contained`` resources, because the receiving trust's systems know them under their own
identifiers (NHS number, local patient ID, Study Instance UID, accession number, GMC or
HCPC number), not under ours.
The same function builds the webhook payload and ``GET .../report/fhir``, so both carry
the same resource for a given report version. When the study has an order, ``basedOn``
names its ServiceRequest by identifier (a logical reference): its accession number.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worklist.enums import ReportStatus
from worklist.models import Order, Patient, Report, ReportAddendum, Site, Study
from worklist.users.registration import registration_identifier

FHIR_JSON = "application/fhir+json"
REPORT_SYSTEM = "urn:imaging-network:report"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DICOM_MODALITY_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LOINC = "http://loinc.org"
IMAGING_STUDY_LOINC = "18748-4"
PATIENT_REF = "#patient"
STUDY_REF = "#study"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
USER_SYSTEM = "urn:imaging-network:user"
PRACTITIONER_ID = "practitioner-{number}"

RADIOLOGY_CATEGORY = {
    "coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}],
}
# DICOM Patient's Sex (0010,0040) to FHIR administrative gender.
_GENDERS = {"M": "male", "F": "female", "O": "other"}


@dataclass(frozen=True)
class Reader:
    """A radiologist as a report names them: username, display name, registration."""

    username: str
    name: str | None = None
    registration: str | None = None

    @property
    def display(self) -> str:
        """The display name, else the username."""
        return self.name or self.username


def site_patient_id_system(site_code: str) -> str:
    """The identifier system of a trust's local patient IDs."""
    return f"urn:imaging-network:site:{site_code}:patient-id"


def site_accession_system(site_code: str) -> str:
    """The identifier system of a trust's accession numbers."""
    return f"urn:imaging-network:site:{site_code}:accession"


def service_request_reference(order: Order, site: Site) -> dict[str, Any]:
    """A logical reference to the order's ServiceRequest by its accession number: the one
    identifier every order has, unique within its trust (``GET .../ServiceRequest`` lists it
    with the placer and filler numbers)."""
    return {
        "type": "ServiceRequest",
        "identifier": {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
            "system": site_accession_system(site.code),
            "value": order.accession_number,
        },
    }


def fhir_instant(value: datetime) -> str:
    """A FHIR ``instant``/``dateTime``: UTC, milliseconds, ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def full_text(
    report: Report, addenda: Sequence[ReportAddendum], readers: Mapping[int, Reader]
) -> str:
    """The signed text with each addendum appended under a dated heading."""
    parts = [report.text.rstrip()]
    for number, addendum in enumerate(addenda, start=1):
        heading = (
            f"--- ADDENDUM {number} ({fhir_instant(addendum.created_at)}, "
            f"{readers[addendum.author_id].display}) ---"
        )
        parts.append(f"{heading}\n{addendum.text.rstrip()}")
    return "\n\n".join(parts)


def issued_at(report: Report, addenda: Sequence[ReportAddendum]) -> datetime:
    """When this version of the result was released: signing, or the latest addendum."""
    if report.status is ReportStatus.AMENDED and addenda:
        return addenda[-1].created_at
    if report.finalised_at is None:
        raise ValueError("a draft report is not a result")
    return report.finalised_at


def human_name(dicom_name: str) -> dict[str, Any] | None:
    """A FHIR HumanName from a DICOM PN (``family^given^middle^prefix^suffix``)."""
    alphabetic = dicom_name.split("=", 1)[0]
    components = [part.strip() for part in alphabetic.split("^")] + [""] * 5
    family, given, middle, prefix, suffix = components[:5]
    givens = [name for name in (given, middle) if name]
    if not (family or givens):
        return None
    name: dict[str, Any] = {"use": "official", "text": " ".join([*givens, family]).strip()}
    if family:
        name["family"] = family
    if givens:
        name["given"] = givens
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name


def contained_patient(patient: Patient, site: Site) -> dict[str, Any]:
    """The patient as the originating trust knows them: NHS number and local ID."""
    identifiers: list[dict[str, Any]] = []
    if patient.nhs_number:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number})
    identifiers.append(
        {
            "use": "usual",
            "system": site_patient_id_system(site.code),
            "value": patient.local_id,
            "assigner": {"display": site.name},
        }
    )
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": PATIENT_REF.removeprefix("#"),
        "identifier": identifiers,
    }
    name = human_name(patient.name or "")
    if name is not None:
        resource["name"] = [name]
    resource["gender"] = _GENDERS.get((patient.sex or "").strip().upper(), "unknown")
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def contained_imaging_study(study: Study, site: Site) -> dict[str, Any]:
    """The study by its Study Instance UID and accession number."""
    identifiers: list[dict[str, Any]] = [
        {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study.study_uid}"}
    ]
    if study.accession_number:
        identifiers.append(
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": site_accession_system(site.code),
                "value": study.accession_number,
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": STUDY_REF.removeprefix("#"),
        "identifier": identifiers,
        "status": "available",
        "subject": {"reference": PATIENT_REF},
    }
    if study.modalities:
        resource["modality"] = [
            {"system": DICOM_MODALITY_SYSTEM, "code": code} for code in study.modalities
        ]
    if study.study_datetime is not None:
        resource["started"] = fhir_instant(study.study_datetime)
    resource["numberOfSeries"] = study.series_count
    resource["numberOfInstances"] = study.instance_count
    if study.description:
        resource["description"] = study.description
    return resource


def contained_practitioner(reader: Reader, resource_id: str) -> dict[str, Any]:
    """A radiologist by professional registration (GMC/HCPC) and by our username."""
    identifiers: list[dict[str, Any]] = []
    if reader.registration:
        registration = registration_identifier(reader.registration)
        identifiers.append({"system": registration.system, "value": registration.value})
    identifiers.append({"system": USER_SYSTEM, "value": reader.username})
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": resource_id,
        "identifier": identifiers,
    }
    if reader.name:
        resource["name"] = [{"use": "official", "text": reader.name}]
    return resource


def _practitioners(
    report: Report, addenda: Sequence[ReportAddendum], readers: Mapping[int, Reader]
) -> tuple[list[dict[str, Any]], dict[int, dict[str, str]], list[int]]:
    """Contained Practitioners of everyone involved, references to them by user id, and the
    interpreters (author, then addenda authors) in order."""
    interpreters = list(dict.fromkeys([report.author_id, *(a.author_id for a in addenda)]))
    involved = list(dict.fromkeys([*interpreters, report.finalised_by_id]))
    resources: list[dict[str, Any]] = []
    references: dict[int, dict[str, str]] = {}
    for number, user_id in enumerate((u for u in involved if u is not None), start=1):
        resource_id = PRACTITIONER_ID.format(number=number)
        resources.append(contained_practitioner(readers[user_id], resource_id))
        references[user_id] = {"reference": f"#{resource_id}", "display": readers[user_id].display}
    return resources, references, interpreters


def diagnostic_report(
    *,
    report: Report,
    addenda: Sequence[ReportAddendum],
    study: Study,
    patient: Patient,
    site: Site,
    readers: Mapping[int, Reader],
    order: Order | None = None,
) -> dict[str, Any]:
    """The signed (or amended) report as a FHIR R4 DiagnosticReport (JSON-ready dict);
    ``basedOn`` the ServiceRequest of the study's ``order`` when it has one."""
    if report.status is ReportStatus.DRAFT:
        raise ValueError("a draft report is not a result")
    text = full_text(report, addenda, readers)
    practitioners, references, interpreters = _practitioners(report, addenda, readers)
    issued = fhir_instant(issued_at(report, addenda))
    description = study.description or "Imaging study"
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"report-{report.id}",
        "meta": {"versionId": str(report.version), "lastUpdated": fhir_instant(report.updated_at)},
        "contained": [
            contained_patient(patient, site),
            contained_imaging_study(study, site),
            *practitioners,
        ],
        "identifier": [{"system": REPORT_SYSTEM, "value": str(report.id)}],
        **({"basedOn": [service_request_reference(order, site)]} if order is not None else {}),
        "status": report.status.value,
        "category": [RADIOLOGY_CATEGORY],
        "code": {
            "coding": [
                {
                    "system": LOINC,
                    "code": IMAGING_STUDY_LOINC,
                    "display": "Diagnostic imaging study",
                }
            ],
            "text": description,
        },
        "subject": {"reference": PATIENT_REF},
        "effectiveDateTime": fhir_instant(study.study_datetime or study.received_at),
        "issued": issued,
        "resultsInterpreter": [references[user_id] for user_id in interpreters],
        "imagingStudy": [{"reference": STUDY_REF}],
        "conclusion": text,
        "presentedForm": [
            {
                "contentType": TEXT_CONTENT_TYPE,
                "data": base64.b64encode(text.encode()).decode(),
                "title": f"Radiology report: {description}",
                "creation": issued,
            }
        ],
    }
    if report.finalised_by_id is not None:
        resource["performer"] = [references[report.finalised_by_id]]
    return resource
