"""ServiceRequest fixtures: trust A's RIS (an order client), its study waiting for an order,
the staff who may not place orders, and a full UK-style R4 ServiceRequest."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_site, add_study, add_user, bearer
from tests.reports.conftest import add_claim
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Order, Study

ORIGIN, OTHER = "TRUSTA", "TRUSTC"
ORDERS_A, ALERTS_A, ORDERS_C = "a.ris", "a.results", "c.ris"
READER, MANAGER_A, ADMIN = "dr.b", "a.manager", "net.admin"
NHS_NUMBER = "9434765919"
ACCESSION = "ACC-A-42"
RECEIVED_AT = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
FHIR_JSON = "application/fhir+json"
URL = "/api/v1/fhir/ServiceRequest"

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
SNOMED = "http://snomed.info/sct"
NICIP = "https://fhir.nhs.uk/CodeSystem/NICIP"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
GMC = "https://fhir.hl7.org.uk/Id/gmc-number"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def typed(code: str, value: str, system: str = "https://trusta.example/Id/ris") -> dict[str, Any]:
    """An identifier of a v2-0203 type."""
    return {
        "type": {"coding": [{"system": V2_0203, "code": code}]},
        "system": system,
        "value": value,
    }


def service_request(**overrides: Any) -> dict[str, Any]:
    """Trust A's ED asks for a CT head, as a RIS would post it (contained patient, referrer
    with organisation, encounter); ``overrides`` replace top-level elements (None drops)."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [
                    {"system": NHS_SYSTEM, "value": "943 476 5919"},
                    typed("MR", "A-000123", "https://trusta.example/Id/mrn"),
                ],
                "name": [{"family": "SMITH", "given": ["John", "Peter"], "prefix": ["Mr"]}],
                "birthDate": "1948-03-02",
            },
            {
                "resourceType": "PractitionerRole",
                "id": "req",
                "practitioner": {
                    "identifier": {"system": GMC, "value": "1234567"},
                    "display": "Dr Ann Jones",
                },
                "organization": {
                    "identifier": {"system": ODS, "value": "RXA"},
                    "display": "Trust A Emergency Department",
                },
            },
            {
                "resourceType": "Encounter",
                "id": "enc",
                "status": "in-progress",
                "class": {"system": ACT_CODE, "code": "EMER"},
            },
        ],
        "identifier": [typed("ACSN", ACCESSION), typed("PLAC", "PL-77"), typed("FILL", "FL-88")],
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "code": {
            "coding": [
                {"system": SNOMED, "code": "408754009", "display": "CT of head"},
                {"system": NICIP, "code": "CHEAD", "display": "CT Head"},
            ],
            "text": "CT Head without contrast",
        },
        "subject": {"reference": "#pat"},
        "authoredOn": "2030-01-07T08:15:00+00:00",
        "requester": {"reference": "#req"},
        "reasonCode": [{"text": "Fall, on anticoagulants, GCS 14"}],
        "reasonReference": [{"display": "Head injury"}],
        "supportingInfo": [{"reference": "#enc"}],
    }
    for key, value in overrides.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return copy.deepcopy(resource)


def valid_service_request(resource: dict[str, Any]) -> ServiceRequest:
    """Validate as R4 (fhir.resources, R4B classes: ServiceRequest is the same in R4)."""
    parsed = ServiceRequest.model_validate(resource)
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["intent"] == "order"
    assert resource["status"] in {"draft", "active", "on-hold", "revoked", "completed", "unknown"}
    return parsed


@dataclass
class Ris:
    """Trust A (its study ``ACCESSION`` waiting, claimed by READER) and who may call."""

    client: TestClient
    db: sessionmaker[Session]
    study_uid: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def post(
        self,
        body: Any,
        who: str = ORDERS_A,
        *,
        content_type: str = FHIR_JSON,
    ) -> httpx.Response:
        """POST a ServiceRequest (JSON-encoded unless ``body`` is bytes) as ``who``."""
        content = body if isinstance(body, bytes) else _encode(body)
        headers = {**self.headers[who], "Content-Type": content_type}
        response: httpx.Response = self.client.post(URL, content=content, headers=headers)
        return response

    def study(self) -> Study:
        """The committed study."""
        with self.db() as session:
            return session.scalars(select(Study).where(Study.study_uid == self.study_uid)).one()

    def orders(self) -> list[Order]:
        """The committed orders."""
        with self.db() as session:
            return list(session.scalars(select(Order).order_by(Order.id)))


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode()


@pytest.fixture
def ris(client: TestClient, db: sessionmaker[Session], settings: Settings) -> Ris:
    """Trusts A and C, their RIS and staff; trust A's study ACCESSION, claimed by READER."""
    with db() as session, session.begin():
        origin = add_site(session, ORIGIN)
        origin.name = "Trust A Hospitals NHS Foundation Trust"
        add_site(session, OTHER)
        users = {
            ORDERS_A: add_user(session, ORDERS_A, Role.ORDER_CLIENT, ORIGIN),
            ALERTS_A: add_user(session, ALERTS_A, Role.ALERT_CLIENT, ORIGIN),
            ORDERS_C: add_user(session, ORDERS_C, Role.ORDER_CLIENT, OTHER),
            READER: add_user(session, READER, Role.RADIOLOGIST, ORIGIN),
            MANAGER_A: add_user(session, MANAGER_A, Role.MANAGER, ORIGIN),
            ADMIN: add_user(session, ADMIN, Role.ADMIN),
        }
        patient = add_patient(session, origin, local_id="A-000123", nhs_number=NHS_NUMBER)
        study = add_study(session, patient, accession_number=ACCESSION, received_at=RECEIVED_AT)
        add_claim(session, study, users[READER])
    return Ris(
        client=client,
        db=db,
        study_uid=study.study_uid,
        headers={name: bearer(settings, user) for name, user in users.items()},
    )
