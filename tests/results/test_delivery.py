"""How the RIS's acknowledgements drive an hl7 delivery: AA completes it, AE and silence
retry it with backoff, AR fails it for good, visibly."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import (
    ADMIN,
    MANAGER_A,
    ORIGIN,
    SIGNED_TEXT,
    Result,
    deliveries_of,
    messages,
)
from tests.results.conftest import (
    dispatch_once,
    hl7_attempts,
    hl7_deliveries,
    make_due,
    point_at,
)
from tests.results.receiver import Answer, MllpReceiver
from tests.results.validation import assert_valid_oru
from worklist.config import Settings
from worklist.enums import DeliveryChannel
from worklist.models import Delivery, Site


def status_of_site(result: Result, who: str = MANAGER_A) -> dict[str, object]:
    """The site's delivery status as its manager sees it."""
    response = result.send("GET", who, f"/api/v1/sites/{ORIGIN}/webhook")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def metric(body: str, family: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    for parsed in text_string_to_metric_families(body):
        for sample in parsed.samples:
            if sample.name in {family, f"{family}_total"} and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    return 0.0


def test_a_finalised_report_gets_an_hl7_delivery_beside_the_webhook_when_the_site_has_a_ris(
    result: Result, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == ORIGIN)).one()
        site.webhook_url = "https://results.trust-a.example/hook"
        site.webhook_secret = "whsec_" + "A" * 44

    result.sign()

    [message] = messages(db)
    assert deliveries_of(db, message) == [DeliveryChannel.HL7, DeliveryChannel.WEBHOOK]


def test_aa_completes_the_delivery_with_its_attempt_recorded(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    result.sign()

    assert dispatch_once(fast) == 1

    [delivery] = hl7_deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, None)
    [attempt] = hl7_attempts(db)
    assert (attempt.outcome, attempt.attempt, attempt.retry_at) == ("delivered", 1, None)
    assert attempt.url == f"mllp://127.0.0.1:{ris.port}"
    with db() as session:
        row = session.scalars(select(Delivery).where(Delivery.channel == "hl7")).one()
    assert row.delivered_at is not None
    assert row.lease_token is None
    # Done: nothing is sent again.
    make_due(db)
    assert dispatch_once(fast) == 0
    assert len(ris.messages()) == 1
    ris_status = status_of_site(result)["ris"]
    assert isinstance(ris_status, dict)
    assert ris_status["host"] == "127.0.0.1"
    assert ris_status["port"] == ris.port
    assert (ris_status["pending_deliveries"], ris_status["failed_deliveries"]) == (0, 0)
    [shown] = ris_status["recent_attempts"]
    assert (shown["outcome"], shown["event"]) == ("delivered", "report.finalised")


def test_ae_is_retried_with_backoff_and_the_next_aa_completes_it(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    answers = iter(["AE", "AE", "AA"])
    ris.behaviour = lambda text: Answer(next(answers))
    # A backoff of a minute or more: the test moves the clock, it does not wait.
    minutes = fast.model_copy(
        update={"webhook_retry_base_seconds": 60.0, "webhook_retry_max_seconds": 600.0}
    )
    result.sign()

    assert dispatch_once(minutes) == 1
    [delivery] = hl7_deliveries(db)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "AE: error at the RIS (error 207)"
    assert dispatch_once(minutes) == 0  # not due before its backoff ends

    make_due(db)
    assert dispatch_once(minutes) == 1
    make_due(db)
    assert dispatch_once(minutes) == 1

    [delivery] = hl7_deliveries(db)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    attempts = hl7_attempts(db)
    assert [a.outcome for a in attempts] == ["failed", "failed", "delivered"]
    assert all(a.retry_at is not None for a in attempts[:2])
    assert attempts[1].retry_at > attempts[0].retry_at  # type: ignore[operator]
    # The same message every time: one control id, byte-for-byte the same ORU.
    sent = [r.text for r in ris.messages()]
    assert len(sent) == 3
    assert len(set(sent)) == 1
    assert_valid_oru(sent[0])


def test_ar_fails_the_delivery_for_good_visibly_and_it_is_never_retried(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    ris.behaviour = lambda text: Answer("AR")
    result.sign()

    assert dispatch_once(fast) == 1

    [delivery] = hl7_deliveries(db)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "AR: rejected by the RIS (error 204)"
    [attempt] = hl7_attempts(db)
    assert (attempt.outcome, attempt.retry_at) == ("rejected", None)
    make_due(db)
    assert dispatch_once(fast) == 0
    assert len(ris.messages()) == 1

    ris_status = status_of_site(result)["ris"]
    assert isinstance(ris_status, dict)
    assert (ris_status["pending_deliveries"], ris_status["failed_deliveries"]) == (0, 1)
    [failure] = ris_status["recent_failures"]
    assert failure["event"] == "report.finalised"
    assert failure["error"] == "AR: rejected by the RIS (error 204)"
    assert failure["failed_at"] is not None
    assert status_of_site(result, ADMIN)["ris"] == ris_status

    body = result.client.get("/metrics").text
    assert metric(body, "worklist_deliveries_failed", site=ORIGIN, channel="hl7") == 1
    assert metric(body, "worklist_deliveries_failed", site=ORIGIN, channel="webhook") == 0
    assert metric(body, "worklist_deliveries_pending", site=ORIGIN, channel="hl7") == 0


def test_a_refused_final_report_does_not_hold_back_the_amendment(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    answers = iter(["AR", "AA"])
    ris.behaviour = lambda text: Answer(next(answers))
    result.sign()
    assert dispatch_once(fast) == 1
    result.amend()

    assert dispatch_once(fast) == 1

    assert [(d.type, d.status) for d in hl7_deliveries(db)] == [
        ("report.finalised", "failed"),
        ("report.amended", "delivered"),
    ]


def test_an_amendment_waits_until_the_final_report_was_acknowledged(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    answers = iter(["AE", "AA", "AA"])
    ris.behaviour = lambda text: Answer(next(answers))
    result.sign()
    assert dispatch_once(fast) == 1  # AE: the final report waits for its retry
    result.amend()
    make_due(db)

    # One per study at a time, in release order: the final report first.
    assert dispatch_once(fast) == 1
    assert dispatch_once(fast) == 1

    statuses = [r.message.segment("OBR")[25] for r in ris.messages()]
    assert [str(s) for s in statuses] == ["F", "F", "C"]
    assert {d.status for d in hl7_deliveries(db)} == {"delivered"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_a_ris_that_is_down_is_retried_until_it_answers(
    result: Result,
    ris: MllpReceiver,
    fast: Settings,
    db: sessionmaker[Session],
    closed_port: int,
) -> None:
    point_at(db, closed_port)
    result.sign()

    assert dispatch_once(fast) == 1
    make_due(db)
    assert dispatch_once(fast) == 1

    [delivery] = hl7_deliveries(db)
    assert (delivery.status, delivery.attempts) == ("pending", 2)
    assert delivery.last_error == "connection failed: refused"
    assert [a.outcome for a in hl7_attempts(db)] == ["error", "error"]

    point_at(db, ris.port)  # the RIS is back
    make_due(db)
    assert dispatch_once(fast) == 1
    assert hl7_deliveries(db)[0].status == "delivered"
    assert len(ris.messages()) == 1


def test_a_ris_that_never_answers_times_out_and_is_retried(
    result: Result, ris: MllpReceiver, fast: Settings, db: sessionmaker[Session]
) -> None:
    answers = iter([Answer(silent=True), Answer(hang_up=True), Answer("AA")])
    ris.behaviour = lambda text: next(answers)
    result.sign()
    # The RIS holds the first one forever: far longer than the timeout.
    short = fast.model_copy(update={"ris_timeout_seconds": 1.0})

    assert dispatch_once(short) == 1
    make_due(db)
    assert dispatch_once(fast) == 1
    make_due(db)
    assert dispatch_once(fast) == 1

    attempts = hl7_attempts(db)
    assert [(a.outcome, a.error) for a in attempts] == [
        ("timeout", "timeout: no acknowledgement within 1s"),
        ("error", "connection closed before an acknowledgement"),
        ("delivered", None),
    ]
    assert hl7_deliveries(db)[0].status == "delivered"


def test_a_site_without_a_ris_target_gets_no_hl7_delivery(
    result: Result, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == ORIGIN)).one()
        site.ris_host, site.ris_port = None, None
    result.sign()

    assert hl7_deliveries(db) == []


def test_the_report_text_is_never_logged(
    result: Result,
    ris: MllpReceiver,
    fast: Settings,
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter(["AE", "AR"])
    ris.behaviour = lambda text: Answer(next(answers))
    result.sign()

    with caplog.at_level(logging.DEBUG, logger="worklist"):
        assert dispatch_once(fast) == 1
        make_due(db)
        assert dispatch_once(fast) == 1

    logged = "\n".join(
        f"{r.getMessage()} {sorted(vars(r).items(), key=lambda kv: kv[0])}" for r in caplog.records
    )
    assert "HL7 result rejected by the receiver: failed, not retried" in logged
    assert "HL7 result attempt failed" in logged
    for fragment in (SIGNED_TEXT, "subdural", "9434765919", "SMITH", "A-000123"):
        assert fragment not in logged
