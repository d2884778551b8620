"""An R4 ServiceRequest (``POST /api/v1/fhir/ServiceRequest``) read as an ``OrderContent``.

docs/fhir-orders.md lists what each element becomes; in short: ``identifier`` (ACSN, PLAC,
FILL of v2-0203) the order numbers, ``subject`` the patient (an invalid NHS number is
refused), ``code`` the procedure (NICIP, then SNOMED CT), ``priority`` ours (asap is
urgent), ``requester`` and ``supportingInfo`` who asked and from which setting
(``fhir_requester``), ``reasonCode``/``reasonReference`` the indication, ``authoredOn``
the request date and ``status`` the order control. The sites a request names (the
accession's system, a ``performer``) are returned for ``intake`` to check.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime

from worklist.enums import Priority
from worklist.identity import normalise_nhs_number
from worklist.orders.content import OrderContent, OrderControl, OrderPatient, PatientIdentifier
from worklist.orders.fhir_model import (
    CodeableConcept,
    HumanName,
    Identifier,
    Person,
    ServiceRequestIn,
    validate_element,
)
from worklist.orders.fhir_requester import encounter_setting, patient_source, requester
from worklist.orders.outcome import MalformedResource, MissingElement, UnusableResource
from worklist.reports.fhir import NHS_NUMBER_SYSTEM, V2_0203
from worklist.timezones import SITE_TIMEZONE

RESOURCE_TYPE = "ServiceRequest"
SNOMED_CT = "http://snomed.info/sct"
NICIP = "https://fhir.nhs.uk/CodeSystem/NICIP"
SITE_SYSTEM = "urn:imaging-network:site"
ACCESSION_TYPE, PLACER_TYPE, FILLER_TYPE, MEDICAL_RECORD_TYPE = "ACSN", "PLAC", "FILL", "MR"
MAX_ACCESSION_LENGTH = 64
INDICATION_SEPARATOR = "; "

_SITE_ACCESSION = re.compile(r"^urn:imaging-network:site:([^:]+):accession$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")

PRIORITIES = {
    "stat": Priority.STAT,
    "asap": Priority.URGENT,
    "urgent": Priority.URGENT,
    "routine": Priority.ROUTINE,
}


class RequestStatus(enum.StrEnum):
    """ServiceRequest.status (FHIR ``request-status``)."""

    DRAFT = "draft"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    REVOKED = "revoked"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"
    UNKNOWN = "unknown"

    @property
    def control(self) -> OrderControl:
        """What the status asks of the order (a live one is NW; XO once it exists)."""
        if self in (RequestStatus.REVOKED, RequestStatus.ENTERED_IN_ERROR):
            return OrderControl.CANCEL
        if self in (RequestStatus.COMPLETED, RequestStatus.UNKNOWN):
            return OrderControl.STATUS
        return OrderControl.NEW


@dataclass(frozen=True)
class ServiceRequestOrder:
    """A ServiceRequest's order and the site codes it names (none: the caller's)."""

    content: OrderContent
    named_sites: frozenset[str]


def parse_service_request(data: object) -> ServiceRequestOrder:
    """The order a ServiceRequest's JSON asks for; MalformedResource (400) or
    UnusableResource (422) when it cannot be one."""
    if not isinstance(data, dict) or data.get("resourceType") != RESOURCE_TYPE:
        raise MalformedResource("the body must be a FHIR R4 ServiceRequest resource")
    request = validate_element(ServiceRequestIn, data, RESOURCE_TYPE)
    status = _status(request)
    accession, placer, filler, accession_site = _order_numbers(request)
    patient = _patient(request)
    referrer = requester(request)
    encounter_source = encounter_setting(request)
    code_system, code, name = _procedure(request.code)
    content = OrderContent(
        control=status.control,
        accession_number=accession,
        placer_order_number=placer,
        filler_order_number=filler,
        ris_status=status.value,
        identifiers=patient.identifiers,
        patient_local_id=patient.local_id,
        nhs_number=patient.nhs_number,
        patient_name=patient.name,
        patient_birth_date=patient.birth_date,
        procedure_code=code,
        procedure_coding_system=code_system,
        procedure_name=name,
        priority=_priority(request.priority),
        ris_priority=request.priority,
        referrer=referrer,
        patient_source=patient_source(encounter_source, referrer),
        indication=_indication(request),
        requested_at=_authored_on(request.authoredOn),
    )
    sites = {accession_site} if accession_site else set()
    sites |= {
        p.identifier.value
        for p in request.performer
        if p.identifier is not None and p.identifier.system == SITE_SYSTEM and p.identifier.value
    }
    return ServiceRequestOrder(content=content, named_sites=frozenset(sites))


def _status(request: ServiceRequestIn) -> RequestStatus:
    if request.status is None:
        raise MissingElement(
            "ServiceRequest.status is required", expression="ServiceRequest.status"
        )
    try:
        return RequestStatus(request.status)
    except ValueError:
        known = ", ".join(s.value for s in RequestStatus)
        raise UnusableResource(
            f"ServiceRequest.status must be one of {known}", expression="ServiceRequest.status"
        ) from None


def _type_codes(identifier: Identifier) -> set[str]:
    return set(identifier.type.codes(V2_0203)) if identifier.type is not None else set()


def _order_numbers(request: ServiceRequestIn) -> tuple[str, str | None, str | None, str | None]:
    accessions: set[str] = set()
    placer = filler = site = None
    for identifier in request.identifier:
        value = (identifier.value or "").strip()
        if not value:
            continue
        types = _type_codes(identifier)
        site_match = _SITE_ACCESSION.match(identifier.system or "")
        if ACCESSION_TYPE in types or site_match:
            accessions.add(value)
            site = site_match.group(1) if site_match else site
        elif PLACER_TYPE in types:
            placer = placer or value
        elif FILLER_TYPE in types:
            filler = filler or value
    where = "ServiceRequest.identifier"
    if not accessions:
        raise MissingElement(
            "an identifier of type ACSN (the accession number) is required", expression=where
        )
    if len(accessions) > 1:
        raise UnusableResource(
            "the ServiceRequest has more than one accession number", expression=where
        )
    [accession] = accessions
    if len(accession) > MAX_ACCESSION_LENGTH or not accession.isprintable():
        raise UnusableResource(
            f"the accession number must be at most {MAX_ACCESSION_LENGTH} printable characters",
            expression=where,
        )
    return accession, placer, filler, site


def _patient(request: ServiceRequestIn) -> OrderPatient:
    subject = request.subject
    where = "ServiceRequest.subject"
    if subject is None:
        raise MissingElement("ServiceRequest.subject (the patient) is required", expression=where)
    contained = request.contained_resource(subject)
    person = validate_element(Person, contained, "ServiceRequest.contained") if contained else None
    identifiers = list(person.identifier) if person else []
    if subject.identifier is not None:
        identifiers.append(subject.identifier)
    identifiers = [i for i in identifiers if i.value and i.value.strip()]
    if not identifiers:
        raise MissingElement(
            "the subject must be identified by NHS number or local patient ID", expression=where
        )
    nhs_number = None
    local: list[Identifier] = []
    for identifier in identifiers:
        if identifier.system == NHS_NUMBER_SYSTEM:
            nhs_number = normalise_nhs_number(identifier.value)
            if nhs_number is None:
                raise UnusableResource(
                    "the subject's NHS number is not valid (10 digits, Modulus 11 check)",
                    expression=f"{where}.identifier",
                )
        else:
            local.append(identifier)
    local.sort(key=lambda i: MEDICAL_RECORD_TYPE not in _type_codes(i))
    name = _dicom_name(person.name[0]) if person and person.name else None
    return OrderPatient(
        identifiers=tuple(
            PatientIdentifier(
                value=(i.value or "").strip(),
                authority=i.system,
                type=next(iter(sorted(_type_codes(i))), None),
            )
            for i in identifiers
        ),
        local_id=(local[0].value or "").strip() if local else None,
        nhs_number=nhs_number,
        name=name if name is not None else subject.display,
        birth_date=_birth_date(person.birthDate if person else None),
    )


def _dicom_name(name: HumanName) -> str | None:
    """A HumanName as a DICOM PN (``FAMILY^Given^Middle^Prefix^Suffix``), as studies hold."""
    if not (name.family or name.given):
        return name.text
    first = name.given[0] if name.given else ""
    middle = " ".join(name.given[1:])
    parts = [name.family or "", first, middle, " ".join(name.prefix), " ".join(name.suffix)]
    return "^".join(parts).rstrip("^")


def _birth_date(text: str | None) -> date | None:
    if text is None or not _DATE.match(text):
        return None  # absent, or partial (a year, a month): not a date of birth to match on
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UnusableResource(
            "the subject's birthDate is not a date", expression="Patient.birthDate"
        ) from None


def _procedure(code: CodeableConcept | None) -> tuple[str | None, str | None, str | None]:
    if code is None:
        return None, None, None
    coded = [c for c in code.coding if c.code]

    def rank(system: str | None) -> int:
        lowered = (system or "").lower()
        return 0 if "nicip" in lowered else 1 if system == SNOMED_CT else 2

    coded.sort(key=lambda c: rank(c.system))
    first = coded[0] if coded else None
    name = code.text or next((c.display for c in coded if c.display), None)
    if first is None:
        return None, None, name
    return first.system, first.code, name


def _priority(text: str | None) -> Priority | None:
    if text is None:
        return None
    try:
        return PRIORITIES[text]
    except KeyError:
        raise UnusableResource(
            "ServiceRequest.priority must be one of routine, urgent, asap, stat",
            expression="ServiceRequest.priority",
        ) from None


def _indication(request: ServiceRequestIn) -> str | None:
    reasons: list[str] = []
    for concept in request.reasonCode:
        text = concept.text or INDICATION_SEPARATOR.join(
            c.display for c in concept.coding if c.display
        )
        if text:
            reasons.append(text)
    reasons.extend(r.display for r in request.reasonReference if r.display)
    return INDICATION_SEPARATOR.join(dict.fromkeys(reasons)) or None


def _authored_on(text: str | None) -> datetime | None:
    if text is None:
        return None
    where = "ServiceRequest.authoredOn"
    if _DATE.match(text):
        try:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), SITE_TIMEZONE)
        except ValueError:
            raise UnusableResource("authoredOn is not a date", expression=where) from None
    if not _DATETIME.match(text):
        raise UnusableResource(
            "authoredOn must be a date or a date and time, e.g. 2030-01-07T09:00:00Z",
            expression=where,
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UnusableResource("authoredOn is not a date and time", expression=where) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=SITE_TIMEZONE)
