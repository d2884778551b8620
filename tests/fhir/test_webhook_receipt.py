"""End to end: trust A's results system receives the signed report over its webhook."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import (
    ADDENDUM_TEXT,
    ALERTS_A,
    LOCAL_ID,
    NHS_NUMBER,
    ORIGIN,
    SIGNED_TEXT,
    assert_valid_diagnostic_report,
    identifiers,
    make_result,
)
from tests.receiver import WebhookReceiver
from worklist.config import Settings
from worklist.outbox.dispatcher import run_dispatcher


@contextmanager
def dispatcher(settings: Settings) -> Iterator[None]:
    """The worker's webhook dispatcher, in a thread, until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(settings, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the dispatcher did not stop"


def test_trust_a_receives_the_signed_and_the_amended_report_as_fhir(
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    result = make_result(client, db, settings, webhook_receiver.url)
    webhook_receiver.secrets = [result.secret]
    fast = settings.model_copy(update={"worker_interval_seconds": 0.2})

    with dispatcher(fast):
        result.sign()
        [finalised] = webhook_receiver.wait_accepted(1)
        result.amend()
        accepted = webhook_receiver.wait_accepted(2)

    assert [r.type for r in accepted] == ["report.finalised", "report.amended"]
    assert all(r.verified for r in accepted)
    assert {r.path for r in accepted} == {"/hooks"}
    assert accepted[0].webhook_id != accepted[1].webhook_id
    data = finalised.payload["data"]
    assert data["study_uid"] == result.study_uid
    assert data["site"]["code"] == ORIGIN
    report = data["report"]
    assert_valid_diagnostic_report(report)
    assert (report["status"], report["conclusion"]) == ("final", SIGNED_TEXT)
    assert identifiers(report, "Patient") == {
        "https://fhir.nhs.uk/Id/nhs-number": NHS_NUMBER,
        f"urn:imaging-network:site:{ORIGIN}:patient-id": LOCAL_ID,
    }
    assert identifiers(report, "ImagingStudy")["urn:dicom:uid"] == f"urn:oid:{result.study_uid}"
    amended = accepted[1].payload["data"]["report"]
    assert_valid_diagnostic_report(amended)
    assert amended["status"] == "amended"
    assert amended["conclusion"].endswith(ADDENDUM_TEXT)
    # What the webhook carried is what trust A's results system can pull again.
    assert result.fhir(ALERTS_A).json() == amended
