"""An alert as a FHIR R4 ``Communication`` (``GET /api/v1/alerts/{id}/fhir``).

For a trust's alerting system that files results as FHIR: the finding is the payload,
the patient and the referrer are ``contained`` (the trust knows them by NHS number,
local ID and professional code, not by our ids). The recipients are the referrer (who
should be paged, from the study's order) and the trust itself (its alert desk, where
escalation goes whoever is named).
"""

from __future__ import annotations

from typing import Any

from worklist.alerts.repository import AlertView
from worklist.enums import AlertCategory, AlertStatus
from worklist.errors import InvalidInput
from worklist.orders.servicerequest import ACCESSION_TYPE, SITE_SYSTEM
from worklist.reports.fhir import (
    DICOM_UID_SYSTEM,
    NHS_NUMBER_SYSTEM,
    PATIENT_REF,
    USER_SYSTEM,
    V2_0203,
    fhir_instant,
    human_name,
    site_accession_system,
    site_patient_id_system,
)
from worklist.users.registration import normalise_registration, registration_identifier

ALERT_SYSTEM = "urn:imaging-network:alert"
ALERT_CATEGORY_SYSTEM = "urn:imaging-network:alert-category"
COMMUNICATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
REFERRER_REF = "#referrer"
# FHIR request-priority: the categories whose deadlines are minutes or hours are urgent.
PRIORITIES = {AlertCategory.CRITICAL: "stat", AlertCategory.URGENT: "urgent"}


def referrer_system(site_code: str) -> str:
    """The identifier system of a referrer code that is not a GMC or HCPC number."""
    return f"urn:imaging-network:site:{site_code}:referrer"


def _referrer_identifier(code: str, site_code: str) -> dict[str, str]:
    try:
        registration = registration_identifier(normalise_registration(code))
    except InvalidInput:
        return {"system": referrer_system(site_code), "value": code}
    return {"system": registration.system, "value": registration.value}


def _patient(view: AlertView) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = []
    if view.nhs_number:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": view.nhs_number})
    identifiers.append(
        {"use": "usual", "system": site_patient_id_system(view.site.code), "value": view.local_id}
    )
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": PATIENT_REF.removeprefix("#"),
        "identifier": identifiers,
    }
    name = human_name(view.patient_name or "")
    if name is not None:
        patient["name"] = [name]
    return patient


def _referrer(view: AlertView) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The contained Practitioner of the referrer and the recipient reference to it."""
    alert = view.alert
    if not (alert.referrer_name or alert.referrer_code):
        return None
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": REFERRER_REF.removeprefix("#"),
    }
    reference: dict[str, Any] = {"reference": REFERRER_REF, "type": "Practitioner"}
    if alert.referrer_code:
        identifier = _referrer_identifier(alert.referrer_code, view.site.code)
        practitioner["identifier"] = [identifier]
        reference["identifier"] = identifier
    if alert.referrer_name:
        practitioner["name"] = [{"text": alert.referrer_name}]
        reference["display"] = alert.referrer_name
    return practitioner, reference


def _recipients(view: AlertView, referrer: dict[str, Any] | None) -> list[dict[str, Any]]:
    alert = view.alert
    recipients: list[dict[str, Any]] = []
    if referrer is not None:
        recipients.append(referrer)
    elif alert.recipient:
        recipients.append({"display": alert.recipient})
    elif alert.referrer_organisation:
        recipients.append({"type": "Organization", "display": alert.referrer_organisation})
    recipients.append(
        {
            "type": "Organization",
            "identifier": {"system": SITE_SYSTEM, "value": view.site.code},
            "display": view.site.name,
        }
    )
    return recipients


def communication(view: AlertView) -> dict[str, Any]:
    """The alert as a FHIR R4 Communication (JSON-ready dict)."""
    alert = view.alert
    referrer = _referrer(view)
    contained = [_patient(view)]
    if referrer is not None:
        contained.append(referrer[0])
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": f"alert-{alert.id}",
        "contained": contained,
        "identifier": [{"system": ALERT_SYSTEM, "value": str(alert.id)}],
    }
    if view.accession_number and view.order is not None:
        resource["basedOn"] = [
            {
                "type": "ServiceRequest",
                "identifier": {
                    "type": {"coding": [{"system": V2_0203, "code": ACCESSION_TYPE}]},
                    "system": site_accession_system(view.site.code),
                    "value": view.accession_number,
                },
            }
        ]
    acknowledged = alert.status is AlertStatus.ACKNOWLEDGED
    resource["status"] = "completed" if acknowledged else "in-progress"
    resource["category"] = [
        {
            "coding": [
                {"system": COMMUNICATION_CATEGORY, "code": "alert", "display": "Alert"},
                {"system": ALERT_CATEGORY_SYSTEM, "code": alert.category.value},
            ],
            "text": alert.category.value,
        }
    ]
    resource["priority"] = PRIORITIES.get(alert.category, "routine")
    resource["subject"] = {"reference": PATIENT_REF}
    resource["about"] = [
        {
            "type": "ImagingStudy",
            "identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{view.study_uid}"},
        }
    ]
    resource["sent"] = fhir_instant(alert.raised_at)
    if alert.acknowledged_at is not None:
        resource["received"] = fhir_instant(alert.acknowledged_at)
    resource["recipient"] = _recipients(view, referrer[1] if referrer else None)
    resource["sender"] = {
        "type": "Practitioner",
        "identifier": {"system": USER_SYSTEM, "value": view.raised_by},
        "display": view.raised_by,
    }
    resource["payload"] = [{"contentString": alert.finding}]
    if acknowledged:
        note = f"Acknowledged by {alert.acknowledged_by}"
        if alert.acknowledgement_note:
            note += f": {alert.acknowledgement_note}"
        resource["note"] = [{"text": note}]
    return resource
