"""Who asked for an order and from which setting, as a ServiceRequest says.

``requester``: a Practitioner (display and identifier: the referrer's name and code), an
Organization (the referring organisation, by its ODS code), or a contained
PractitionerRole naming both (``practitioner``, ``organization``); contained
Practitioner and Organization resources are read the same way.

``supportingInfo``: an Encounter gives the patient's setting: a display that is one of
our patient sources, else the contained Encounter's ``class`` (v3-ActCode), else a
display that is a class code. A referring organisation that is a GP practice (ODS code:
a letter and five digits) makes it ``gp`` unless the encounter says emergency or
inpatient (GP direct access).
"""

from __future__ import annotations

from worklist.enums import PatientSource
from worklist.orders.content import Referrer, is_gp_practice
from worklist.orders.fhir_model import (
    Encounter,
    Identifier,
    Organization,
    Person,
    PractitionerRole,
    Reference,
    ServiceRequestIn,
    validate_element,
)

ODS_ORGANISATION = "https://fhir.nhs.uk/Id/ods-organization-code"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

ENCOUNTER_CLASSES = {
    "EMER": PatientSource.EMERGENCY,
    "IMP": PatientSource.INPATIENT,
    "ACUTE": PatientSource.INPATIENT,
    "NONAC": PatientSource.INPATIENT,
    "SS": PatientSource.INPATIENT,
    "AMB": PatientSource.OUTPATIENT,
    "PRENC": PatientSource.OUTPATIENT,
    "OBSENC": PatientSource.OTHER,
    "HH": PatientSource.OTHER,
    "VR": PatientSource.OTHER,
    "FLD": PatientSource.OTHER,
}
# Settings a GP practice as referrer does not override: the patient is in hospital.
_HOSPITAL_SOURCES = (PatientSource.EMERGENCY, PatientSource.INPATIENT)


def _is_organisation(reference: Reference) -> bool:
    identifier = reference.identifier
    system = identifier.system if identifier is not None else None
    return reference.resource_type() == "Organization" or system == ODS_ORGANISATION


def _identifier_value(identifier: Identifier | None) -> str | None:
    value = identifier.value.strip() if identifier is not None and identifier.value else ""
    return value or None


def requester(request: ServiceRequestIn) -> Referrer:
    """Who asked: the requester as a clinician and/or their organisation."""
    reference = request.requester
    if reference is None:
        return Referrer()
    contained = request.contained_resource(reference)
    where = "ServiceRequest.contained"
    if contained is not None and contained["resourceType"] == "PractitionerRole":
        role = validate_element(PractitionerRole, contained, where)
        clinician = _party(request, role.practitioner) if role.practitioner else (None, None)
        organisation = _party(request, role.organization) if role.organization else (None, None)
    elif (contained is not None and contained["resourceType"] == "Organization") or (
        contained is None and _is_organisation(reference)
    ):
        clinician, organisation = (None, None), _party(request, reference)
    else:
        clinician, organisation = _party(request, reference), (None, None)
    return Referrer(
        name=clinician[0],
        code=clinician[1],
        organisation=organisation[0],
        organisation_code=organisation[1],
    )


def _party(request: ServiceRequestIn, reference: Reference) -> tuple[str | None, str | None]:
    """Name and code of the Practitioner or Organization ``reference`` points at."""
    contained = request.contained_resource(reference)
    where = "ServiceRequest.contained"
    if contained is not None and contained["resourceType"] == "Organization":
        organisation = validate_element(Organization, contained, where)
        code = next(filter(None, map(_identifier_value, organisation.identifier)), None)
        return organisation.name or reference.display, code
    if contained is not None:
        person = validate_element(Person, contained, where)
        name = next(filter(None, (n.display() for n in person.name)), None)
        code = next(filter(None, map(_identifier_value, person.identifier)), None)
        return name or reference.display, code or _identifier_value(reference.identifier)
    return reference.display, _identifier_value(reference.identifier)


def encounter_setting(request: ServiceRequestIn) -> PatientSource | None:
    """The patient's setting a supportingInfo Encounter gives, if one does."""
    for reference in request.supportingInfo:
        contained = request.contained_resource(reference)
        if contained is not None and contained["resourceType"] != "Encounter":
            continue
        if contained is None and reference.resource_type() != "Encounter":
            continue
        # Our own word first (what we answer with), then the class, then a class as text.
        named = _source_from_display(reference.display)
        if named is not None and named.value == (reference.display or "").strip().lower():
            return named
        if contained is not None:
            encounter = validate_element(Encounter, contained, "ServiceRequest.contained")
            code = encounter.class_.code if encounter.class_ is not None else None
            if code:
                return ENCOUNTER_CLASSES.get(code.upper(), PatientSource.OTHER)
        if named is not None:
            return named
    return None


def _source_from_display(display: str | None) -> PatientSource | None:
    text = (display or "").strip()
    if not text:
        return None
    if text.upper() in ENCOUNTER_CLASSES:
        return ENCOUNTER_CLASSES[text.upper()]
    try:
        return PatientSource(text.lower())
    except ValueError:
        return None


def patient_source(encounter: PatientSource | None, referrer: Referrer) -> PatientSource | None:
    """The setting: the encounter's, or ``gp`` for a GP practice's referral from outside
    hospital."""
    if is_gp_practice(referrer) and encounter not in _HOSPITAL_SOURCES:
        return PatientSource.GP
    return encounter
