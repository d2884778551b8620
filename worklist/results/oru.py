"""A result as an HL7 v2.5.1 ORU^R01: rendered from the outbox message the webhook carries.

The report travels as the FHIR DiagnosticReport of ``report.finalised`` /
``report.amended`` (``worklist.reports.fhir``); this module renders the same resource as
ER7, with the order numbers of the study's order, so the RIS and the webhook receiver get
the same result. Segments: MSH, PID, PV1 (when the order gave the patient's setting),
ORC, OBR, then the report text in OBX segments of type FT (line breaks as ``\\.br\\``).

- PID-3: the local patient ID under the trust's assigning authority (as its order named
  it, else the site code; type MR) and the NHS number (authority NHS, type NH).
- ORC-2/OBR-2 the placer order number, ORC-3/OBR-3 the filler order number (the
  accession number when the order had none, or there is no order), OBR-18 the accession.
- OBR-4 the ordered procedure (code, name, coding system), else the study description.
- OBR-7 the study time, OBR-22 when this version was released, OBR-25 and OBX-11 ``F``
  (final) or ``C`` (corrected: an addendum), OBR-32 the radiologist who signed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from worklist.enums import OutboxEventType, PatientSource
from worklist.reports.fhir import NHS_NUMBER_SYSTEM, site_patient_id_system
from worklist.results import er7
from worklist.users.registration import GMC_NUMBER_SYSTEM, HCPC_NUMBER_SYSTEM

MESSAGE_TYPE = "ORU^R01^ORU_R01"
VERSION = "2.5.1"
PROCESSING_ID = "P"
COUNTRY = "GBR"
SENDING_APPLICATION = "WORKLIST"
# Longest FT value in v2.5.1; longer text continues in the next OBX, on a new line.
MAX_FT_LENGTH = 65536
MAX_CONTROL_ID_LENGTH = 20
REPORT_TEXT_CODE = er7.components("18782-3", "Radiology Study observation (narrative)", "LN")
FINAL = "F"
CORRECTED = "C"
LOCAL_ID_TYPE = "MR"
NHS_AUTHORITY = "NHS"
NHS_ID_TYPE = "NH"

_SEX = {"male": "M", "female": "F", "other": "O"}
# HL7 table 0004 (patient class) for the order's setting; GP direct access is outpatient.
_PATIENT_CLASS: dict[str | None, str] = {
    PatientSource.EMERGENCY.value: "E",
    PatientSource.INPATIENT.value: "I",
    PatientSource.OUTPATIENT.value: "O",
    PatientSource.GP.value: "O",
    PatientSource.OTHER.value: "U",
}
_REGISTERS = {GMC_NUMBER_SYSTEM: "GMC", HCPC_NUMBER_SYSTEM: "HCPC"}
_TITLES = frozenset({"dr", "prof", "professor", "mr", "mrs", "ms", "miss", "mx"})
_CODING_SYSTEMS = {"snomed": "SCT", "nicip": "NICIP", "loinc": "LN"}


@dataclass(frozen=True)
class OrderNumbers:
    """What the study's order adds to the result (``orders`` row)."""

    accession_number: str
    placer_order_number: str | None = None
    filler_order_number: str | None = None
    procedure_code: str | None = None
    procedure_coding_system: str | None = None
    procedure_name: str | None = None
    patient_source: str | None = None
    patient_identifiers: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Envelope:
    """The MSH of one result: who sends it to whom, when, under which control id."""

    control_id: str
    created_at: datetime
    sending_facility: str
    receiving_facility: str
    sending_application: str = SENDING_APPLICATION


def control_id(webhook_id: str) -> str:
    """MSH-10 of a message (at most 20 characters): the same on every retry."""
    return webhook_id.removeprefix("msg_")[:MAX_CONTROL_ID_LENGTH]


def result_status(event_type: str) -> str:
    """OBR-25 / OBX-11: ``F`` for a final report, ``C`` for an amended one."""
    return CORRECTED if event_type == OutboxEventType.REPORT_AMENDED else FINAL


def _contained(resource: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [r for r in resource.get("contained", []) if r.get("resourceType") == kind]


def _identifier(resource: Mapping[str, Any], system: str) -> str | None:
    for identifier in resource.get("identifier", []):
        if identifier.get("system") == system:
            value: str = identifier["value"]
            return value
    return None


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _pid(
    patient: Mapping[str, Any], site_code: str, order: OrderNumbers | None
) -> list[str | None]:
    identifiers = []
    local_id = _identifier(patient, site_patient_id_system(site_code))
    if local_id:
        authority, id_type = site_code, LOCAL_ID_TYPE
        for sent in order.patient_identifiers if order else ():
            if sent.get("id") == local_id and sent.get("authority"):
                authority, id_type = sent["authority"], sent.get("type") or LOCAL_ID_TYPE
                break
        identifiers.append(
            er7.components(er7.escape(local_id), "", "", er7.escape(authority), er7.escape(id_type))
        )
    nhs_number = _identifier(patient, NHS_NUMBER_SYSTEM)
    if nhs_number:
        identifiers.append(er7.components(nhs_number, "", "", NHS_AUTHORITY, NHS_ID_TYPE))
    names = patient.get("name") or [{}]
    name = names[0]
    given = [er7.escape(g) for g in name.get("given", [])]
    xpn = er7.components(
        er7.escape(name.get("family")),
        given[0] if given else "",
        " ".join(given[1:]),
        er7.escape(" ".join(name.get("suffix", []))),
        er7.escape(" ".join(name.get("prefix", []))),
    )
    birth = patient.get("birthDate")
    return [
        "1",
        "",
        er7.REPETITION.join(identifiers),
        "",
        xpn,
        "",
        er7.hl7_date(date.fromisoformat(birth)) if birth else "",
        _SEX.get(patient.get("gender", ""), "U"),
    ]


def _coding_system(system: str | None) -> str:
    if not system:
        return ""
    lowered = system.lower()
    for fragment, code in _CODING_SYSTEMS.items():
        if fragment in lowered:
            return code
    return er7.escape(system) if len(system) <= 20 and "/" not in system else ""


def _procedure(order: OrderNumbers | None, description: str | None) -> str:
    if order is not None and (order.procedure_code or order.procedure_name):
        return er7.components(
            er7.escape(order.procedure_code),
            er7.escape(order.procedure_name),
            _coding_system(order.procedure_coding_system) if order.procedure_code else "",
        )
    return er7.components("", er7.escape(description or "Imaging study"))


def _interpreter(resource: Mapping[str, Any]) -> str:
    """OBR-32 (NDL): the signer's registration number, name and register as a CNN."""
    performers = resource.get("performer") or resource.get("resultsInterpreter") or []
    if not performers:
        return ""
    reference = performers[0]
    wanted = reference.get("reference", "").removeprefix("#")
    practitioner = next(
        (p for p in _contained(resource, "Practitioner") if p.get("id") == wanted), {}
    )
    number, register = "", ""
    for system, code in _REGISTERS.items():
        if value := _identifier(practitioner, system):
            number, register = value, code
            break
    names = practitioner.get("name") or [{}]
    words = (names[0].get("text") or reference.get("display") or "").split()
    prefix = words.pop(0) if len(words) > 1 and words[0].lower().rstrip(".") in _TITLES else ""
    family = words.pop() if words else ""
    return er7.subcomponents(
        er7.escape(number),
        er7.escape(family),
        er7.escape(" ".join(words)),
        "",
        "",
        er7.escape(prefix),
        "",
        "",
        register,
    )


def text_values(text: str) -> Iterator[str]:
    """The report text as OBX-5 values of type FT: whole lines joined by ``\\.br\\``, each
    value at most ``MAX_FT_LENGTH`` (a longer line is cut, and continues on a new line)."""
    current: list[str] = []
    size = 0
    for line in er7.normalise_newlines(text).split("\n"):
        pieces = _cut([er7.escape_char(c, line_breaks=True) for c in line])
        for piece in pieces:
            extra = len(piece) + (len(er7.LINE_BREAK) if current else 0)
            if current and size + extra > MAX_FT_LENGTH:
                yield er7.LINE_BREAK.join(current)
                current, size = [], 0
                extra = len(piece)
            current.append(piece)
            size += extra
    yield er7.LINE_BREAK.join(current)


def _cut(escaped: list[str]) -> list[str]:
    pieces: list[str] = []
    piece = ""
    for char in escaped:
        if len(piece) + len(char) > MAX_FT_LENGTH:
            pieces.append(piece)
            piece = ""
        piece += char
    pieces.append(piece)
    return pieces


def build_oru(*, envelope: Envelope, payload: Mapping[str, Any], order: OrderNumbers | None) -> str:
    """The ORU^R01 (ER7, segments ended by ``\\r``) of a ``report.*`` outbox message body."""
    data = payload["data"]
    resource = data["report"]
    site_code = data["site"]["code"]
    status = result_status(payload["type"])
    [patient] = _contained(resource, "Patient")
    [study] = _contained(resource, "ImagingStudy")
    accession = order.accession_number if order else (data.get("accession_number") or "")
    placer = order.placer_order_number if order else None
    filler = (order.filler_order_number if order else None) or accession
    observed = _instant(study.get("started") or resource.get("effectiveDateTime"))
    issued = _instant(resource["issued"])
    segments = [
        er7.msh(
            er7.escape(envelope.sending_application),
            er7.escape(envelope.sending_facility),
            "",
            er7.escape(envelope.receiving_facility),
            er7.timestamp(envelope.created_at),
            "",
            MESSAGE_TYPE,
            envelope.control_id,
            PROCESSING_ID,
            VERSION,
            "",
            "",
            "",
            "",
            COUNTRY,
            er7.CHARACTER_SET,
        ),
        er7.segment("PID", *_pid(patient, site_code, order)),
    ]
    if patient_class := _PATIENT_CLASS.get(order.patient_source if order else None):
        segments.append(er7.segment("PV1", "1", patient_class))
    segments.append(er7.segment("ORC", "RE", er7.escape(placer), er7.escape(filler), "", "CM"))
    obr: list[str | None] = [""] * 32
    obr[0] = "1"
    obr[1] = er7.escape(placer)
    obr[2] = er7.escape(filler)
    obr[3] = _procedure(order, study.get("description"))
    obr[6] = er7.timestamp(observed) if observed else ""
    obr[17] = er7.escape(accession)
    obr[21] = er7.timestamp(issued) if issued else ""
    obr[23] = "RAD"
    obr[24] = status
    obr[31] = _interpreter(resource)
    segments.append(er7.segment("OBR", *obr))
    for number, value in enumerate(text_values(resource["conclusion"]), start=1):
        segments.append(
            er7.segment("OBX", str(number), "FT", REPORT_TEXT_CODE, "", value, *[""] * 5, status)
        )
    return er7.message(segments)
