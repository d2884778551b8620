"""Results delivery fixtures: trust A's study, reported by a trust-B radiologist; trust C."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_site, add_study, add_user, bearer, client
from tests.reports.conftest import add_claim, report_url
from worklist.config import Settings
from worklist.enums import DeliveryChannel, Role
from worklist.models import Delivery, OutboxMessage
from worklist.sites.service import new_webhook_secret

__all__ = ["client"]

ORIGIN = "TRUSTA"
READER_SITE = "TRUSTB"
OTHER = "TRUSTC"
READER = "dr.b"  # trust B radiologist with reporting privileges at trust A
READER_NAME = "Dr Bea Reader"
READER_GMC = "7654321"
OTHER_RADIOLOGIST = "dr.c"
MANAGER_A = "a.manager"
MANAGER_C = "c.manager"
ALERTS_A = "a.results"
ALERTS_C = "c.results"
ADMIN = "net.admin"
NHS_NUMBER = "9434765919"
LOCAL_ID = "A-000123"
ACCESSION = "ACC-A-42"
STUDY_DATETIME = datetime(2030, 1, 7, 8, 30, tzinfo=UTC)
SIGNED_TEXT = "Acute right subdural haematoma with 6 mm midline shift."
ADDENDUM_TEXT = "Discussed with the on-call neurosurgical registrar at 10:05."


@dataclass
class Result:
    """Trust A's CT head, claimed by READER, and everyone who may ask about its result."""

    client: TestClient
    study_uid: str
    webhook_url: str
    secret: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def send(self, method: str, who: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request as ``who``."""
        response: httpx.Response = self.client.request(
            method, url, headers=self.headers[who], **kwargs
        )
        return response

    def save(self, text: str = SIGNED_TEXT) -> dict[str, Any]:
        """Save a draft as READER."""
        response = self.send("PUT", READER, report_url(self.study_uid), json={"text": text})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def finalise(self, version: int) -> httpx.Response:
        """Sign at ``version`` as READER."""
        url = report_url(self.study_uid, "/finalise")
        return self.send("POST", READER, url, json={"version": version})

    def sign(self, text: str = SIGNED_TEXT) -> dict[str, Any]:
        """Draft and sign the report as READER."""
        response = self.finalise(self.save(text)["version"])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def amend(self, text: str = ADDENDUM_TEXT) -> dict[str, Any]:
        """Add an addendum as READER (the author)."""
        url = report_url(self.study_uid, "/addenda")
        response = self.send("POST", READER, url, json={"text": text})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def fhir(self, who: str) -> httpx.Response:
        """GET the FHIR resource as ``who``."""
        return self.send("GET", who, report_url(self.study_uid, "/fhir"))


def make_result(
    client: TestClient, db: sessionmaker[Session], settings: Settings, webhook_url: str | None
) -> Result:
    """Trusts A (webhook at ``webhook_url``), B and C; A's study claimed by READER."""
    secret = new_webhook_secret()
    with db() as session, session.begin():
        origin = add_site(session, ORIGIN)
        origin.name = "Trust A Hospitals NHS Foundation Trust"
        if webhook_url is not None:
            origin.webhook_url = webhook_url
            origin.webhook_secret = secret
        add_site(session, READER_SITE)
        add_site(session, OTHER)
        users = {
            READER: add_user(session, READER, Role.RADIOLOGIST, READER_SITE, ORIGIN),
            OTHER_RADIOLOGIST: add_user(session, OTHER_RADIOLOGIST, Role.RADIOLOGIST, OTHER),
            MANAGER_A: add_user(session, MANAGER_A, Role.MANAGER, ORIGIN),
            MANAGER_C: add_user(session, MANAGER_C, Role.MANAGER, OTHER),
            ALERTS_A: add_user(session, ALERTS_A, Role.ALERT_CLIENT, ORIGIN),
            ALERTS_C: add_user(session, ALERTS_C, Role.ALERT_CLIENT, OTHER),
            ADMIN: add_user(session, ADMIN, Role.ADMIN),
        }
        users[READER].name = READER_NAME
        users[READER].registration = f"GMC{READER_GMC}"
        patient = add_patient(
            session,
            origin,
            local_id=LOCAL_ID,
            name="SMITH^JOHN^PETER^MR",
            nhs_number=NHS_NUMBER,
            birth_date=date(1948, 3, 2),
            sex="M",
        )
        study = add_study(
            session,
            patient,
            accession_number=ACCESSION,
            description="CT HEAD WITHOUT CONTRAST",
            study_datetime=STUDY_DATETIME,
        )
        add_claim(session, study, users[READER])
    return Result(
        client=client,
        study_uid=study.study_uid,
        webhook_url=webhook_url or "",
        secret=secret,
        headers={name: bearer(settings, user) for name, user in users.items()},
    )


@pytest.fixture
def result(client: TestClient, db: sessionmaker[Session], settings: Settings) -> Result:
    """Trust A with a webhook URL nobody listens on (the dispatcher is not running)."""
    return make_result(client, db, settings, "http://127.0.0.1:9/results")


def messages(db: sessionmaker[Session], event_type: str | None = None) -> list[OutboxMessage]:
    """Committed outbox messages, oldest first (of one type if given)."""
    with db() as session:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if event_type is not None:
            stmt = stmt.where(OutboxMessage.type == event_type)
        return list(session.scalars(stmt))


def deliveries_of(db: sessionmaker[Session], message: OutboxMessage) -> list[DeliveryChannel]:
    """The channels the message is to be delivered on."""
    with db() as session:
        stmt = select(Delivery.channel).where(Delivery.message_id == message.id)
        return sorted(session.scalars(stmt))


def payload(message: OutboxMessage) -> dict[str, Any]:
    """The webhook payload the message carries."""
    body: dict[str, Any] = json.loads(message.body)
    return body


_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def assert_valid_diagnostic_report(resource: dict[str, Any]) -> DiagnosticReport:
    """Validate as R4 (fhir.resources: structure, types, required elements) and check the
    codes and elements results delivery relies on (fhir.resources does not check codes)."""
    parsed = DiagnosticReport.model_validate(resource)
    assert resource["resourceType"] == "DiagnosticReport"
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", resource["id"])
    assert resource["status"] in {"final", "amended"}
    assert resource["category"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                    "code": "RAD",
                    "display": "Radiology",
                }
            ]
        }
    ]
    [coding] = resource["code"]["coding"]
    assert (coding["system"], coding["code"]) == ("http://loinc.org", "18748-4")
    assert _INSTANT.match(resource["issued"])
    assert _INSTANT.match(resource["effectiveDateTime"])
    contained = {r["resourceType"]: r for r in resource["contained"]}
    assert resource["subject"] == {"reference": "#patient"}
    assert contained["Patient"]["id"] == "patient"
    # fhir.resources checks structure, not value sets: check the codes we send.
    assert contained["Patient"]["gender"] in {"male", "female", "other", "unknown"}
    assert contained["Patient"]["identifier"], "the subject must be identifiable"
    for resource_identifier in contained["Patient"]["identifier"]:
        assert resource_identifier["system"]
        assert resource_identifier["value"]
    assert resource["imagingStudy"] == [{"reference": "#study"}]
    assert contained["ImagingStudy"]["id"] == "study"
    assert contained["ImagingStudy"]["subject"] == {"reference": "#patient"}
    assert contained["ImagingStudy"]["status"] == "available"
    practitioners = {
        r["id"]: r for r in resource["contained"] if r["resourceType"] == "Practitioner"
    }
    people = [*resource["resultsInterpreter"], *resource.get("performer", [])]
    assert people, "the report must say who interpreted it"
    for person in people:
        assert person["reference"].removeprefix("#") in practitioners, person
        assert person["display"]
    for practitioner in practitioners.values():
        assert practitioner["identifier"], "a practitioner must be identifiable"
    [form] = resource["presentedForm"]
    assert form["contentType"] == "text/plain; charset=utf-8"
    assert base64.b64decode(form["data"]).decode() == resource["conclusion"]
    return parsed


def identifiers(resource: dict[str, Any], kind: str) -> dict[str, str]:
    """System -> value of the identifiers of the contained resource of type ``kind``."""
    [contained] = [r for r in resource["contained"] if r["resourceType"] == kind]
    return {i.get("system", ""): i["value"] for i in contained["identifier"]}
