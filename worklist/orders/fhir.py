"""An order as an R4 ServiceRequest: what ``POST``/``GET /api/v1/fhir/ServiceRequest`` answer.

The resource says what we hold, whichever way the order came (HL7 v2 or FHIR): ``id`` is
our order id; the patient and a referrer named with their organisation are ``contained``
(as in the DiagnosticReport), the setting is a contained Encounter whose ``class`` reads
back as the same patient source. Posting the resource back changes nothing.
"""

from __future__ import annotations

from typing import Any

from worklist.enums import OrderStatus, PatientSource, Priority
from worklist.models import Order, Site
from worklist.orders.fhir_requester import ODS_ORGANISATION, V3_ACT_CODE
from worklist.orders.servicerequest import (
    ACCESSION_TYPE,
    FILLER_TYPE,
    NICIP,
    PLACER_TYPE,
    PRIORITIES,
    SITE_SYSTEM,
    SNOMED_CT,
    RequestStatus,
)
from worklist.reports.fhir import (
    NHS_NUMBER_SYSTEM,
    PATIENT_REF,
    V2_0203,
    fhir_instant,
    human_name,
    site_accession_system,
    site_patient_id_system,
)

RESOURCE_PATH = "/api/v1/fhir/ServiceRequest"
REQUESTER_REF = "#requester"
ENCOUNTER_REF = "#encounter"
IMAGING_CATEGORY = {
    "coding": [{"system": SNOMED_CT, "code": "363679005", "display": "Imaging"}],
}
# HL7 v2 coding system names (OBR-4.3) as FHIR code system URIs.
CODING_SYSTEMS = {"SCT": SNOMED_CT, "SNM": SNOMED_CT, "SNOMED": SNOMED_CT, "NICIP": NICIP}
# Our priorities as FHIR's: those FHIR has no word for are routine there.
_FHIR_PRIORITY = {Priority.STAT: "stat", Priority.URGENT: "urgent"}
# The patient source as an Encounter class (v3-ActCode); a GP referral is ambulatory.
_ENCOUNTER_CLASS = {
    PatientSource.EMERGENCY: "EMER",
    PatientSource.INPATIENT: "IMP",
    PatientSource.OUTPATIENT: "AMB",
    PatientSource.GP: "AMB",
}
_LIVE_STATUSES = {s.value for s in RequestStatus} - {
    RequestStatus.REVOKED.value,
    RequestStatus.ENTERED_IN_ERROR.value,
}


def resource_location(order_id: int) -> str:
    """Where the ServiceRequest of an order is read."""
    return f"{RESOURCE_PATH}/{order_id}"


def _typed_identifier(code: str, system: str, value: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": V2_0203, "code": code}]},
        "system": system,
        "value": value,
    }


def _identifiers(order: Order, site: Site) -> list[dict[str, Any]]:
    prefix = f"urn:imaging-network:site:{site.code}"
    identifiers = [
        _typed_identifier(ACCESSION_TYPE, site_accession_system(site.code), order.accession_number)
    ]
    if order.placer_order_number:
        identifiers.append(
            _typed_identifier(PLACER_TYPE, f"{prefix}:placer-order", order.placer_order_number)
        )
    if order.filler_order_number:
        identifiers.append(
            _typed_identifier(FILLER_TYPE, f"{prefix}:filler-order", order.filler_order_number)
        )
    return identifiers


def _status(order: Order) -> str:
    if order.status == OrderStatus.CANCELLED:
        return RequestStatus.REVOKED.value
    return order.ris_status if order.ris_status in _LIVE_STATUSES else RequestStatus.ACTIVE.value


def _priority(order: Order) -> str | None:
    if order.ris_priority in PRIORITIES:
        return order.ris_priority
    if order.priority is None:
        return None
    return _FHIR_PRIORITY.get(order.priority, "routine")


def _code(order: Order) -> dict[str, Any] | None:
    concept: dict[str, Any] = {}
    if order.procedure_code:
        coding: dict[str, Any] = {"code": order.procedure_code}
        system = order.procedure_coding_system
        if system:
            uri = CODING_SYSTEMS.get(system.upper(), system)
            if ":" in uri:  # a name we cannot turn into a URI is left out
                coding["system"] = uri
        if order.procedure_name:
            coding["display"] = order.procedure_name
        concept["coding"] = [coding]
    if order.procedure_name:
        concept["text"] = order.procedure_name
    return concept or None


def _patient(order: Order, site: Site) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = []
    if order.nhs_number:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": order.nhs_number})
    if order.patient_local_id:
        identifiers.append(
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": site_patient_id_system(site.code),
                "value": order.patient_local_id,
            }
        )
    patient: dict[str, Any] = {"resourceType": "Patient", "id": PATIENT_REF.removeprefix("#")}
    if identifiers:
        patient["identifier"] = identifiers
    name = human_name(order.patient_name or "")
    if name is not None:
        patient["name"] = [name]
    if order.patient_birth_date is not None:
        patient["birthDate"] = order.patient_birth_date.isoformat()
    return patient


def _party(kind: str, name: str | None, code: str | None, system: str | None) -> dict[str, Any]:
    reference: dict[str, Any] = {"type": kind}
    if code:
        reference["identifier"] = {"system": system, "value": code} if system else {"value": code}
    if name:
        reference["display"] = name
    return reference


def _requester(order: Order) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The requester reference, and the contained PractitionerRole it points at (if any)."""
    has_clinician = bool(order.referrer_name or order.referrer_code)
    organisation_name = order.referrer_organisation
    has_organisation = bool(organisation_name or order.referrer_organisation_code)
    clinician = _party("Practitioner", order.referrer_name, order.referrer_code, None)
    organisation = _party(
        "Organization", organisation_name, order.referrer_organisation_code, ODS_ORGANISATION
    )
    if has_clinician and has_organisation:
        role = {
            "resourceType": "PractitionerRole",
            "id": REQUESTER_REF.removeprefix("#"),
            "practitioner": clinician,
            "organization": organisation,
        }
        display = ", ".join(filter(None, [order.referrer_name, organisation_name]))
        reference: dict[str, Any] = {"reference": REQUESTER_REF, "type": "PractitionerRole"}
        if display:
            reference["display"] = display
        return reference, role
    if has_clinician:
        return clinician, None
    if has_organisation:
        return organisation, None
    return None, None


def _encounter(order: Order) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The supportingInfo reference naming the setting, and its contained Encounter."""
    if not order.patient_source:
        return None, None
    source = PatientSource(order.patient_source)
    reference: dict[str, Any] = {"type": "Encounter", "display": source.value}
    code = _ENCOUNTER_CLASS.get(source)
    if code is None:
        return reference, None
    reference["reference"] = ENCOUNTER_REF
    encounter = {
        "resourceType": "Encounter",
        "id": ENCOUNTER_REF.removeprefix("#"),
        "status": "unknown",
        "class": {"system": V3_ACT_CODE, "code": code},
    }
    return reference, encounter


def service_request(order: Order, site: Site) -> dict[str, Any]:
    """The order as a FHIR R4 ServiceRequest (JSON-ready dict)."""
    requester, role = _requester(order)
    setting, encounter = _encounter(order)
    contained = [_patient(order, site), *filter(None, [role, encounter])]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(order.id),
        "meta": {"lastUpdated": fhir_instant(order.updated_at)},
        "contained": contained,
        "identifier": _identifiers(order, site),
        "status": _status(order),
        "intent": "order",
        "category": [IMAGING_CATEGORY],
    }
    priority = _priority(order)
    if priority is not None:
        resource["priority"] = priority
    code = _code(order)
    if code is not None:
        resource["code"] = code
    resource["subject"] = {"reference": PATIENT_REF}
    if order.requested_at is not None:
        resource["authoredOn"] = fhir_instant(order.requested_at)
    if requester is not None:
        resource["requester"] = requester
    resource["performer"] = [
        {
            "type": "Organization",
            "identifier": {"system": SITE_SYSTEM, "value": site.code},
            "display": site.name,
        }
    ]
    if order.indication:
        resource["reasonCode"] = [{"text": order.indication}]
    if setting is not None:
        resource["supportingInfo"] = [setting]
    return resource
