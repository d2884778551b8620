"""/metrics: alert breaches, open alerts, outbox backlog, disabled endpoints (from the database)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    LOOPBACK_CLIENT,
    add_patient,
    add_site,
    add_study,
    add_user,
    loopback_client,
)
from tests.factories import add_outbox_message
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import (
    AlertCategory,
    AlertStatus,
    DeliveryChannel,
    DeliveryStatus,
    Role,
)
from worklist.models import Alert, AlertBreach, Delivery, Site, Study, User

__all__ = ["loopback_client"]

CLOSED_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
FAMILIES = {
    "worklist_alert_ack_breaches",
    "worklist_alerts_open",
    "worklist_deliveries_pending",
    "worklist_delivery_oldest_pending_seconds",
    "worklist_webhook_endpoint_disabled",
}

Samples = dict[str, dict[tuple[str, ...], float]]


def scrape(body: str) -> Samples:
    """Samples of the delivery families by family name, keyed by label values."""
    result: Samples = {}
    for family in text_string_to_metric_families(body):
        if family.name in FAMILIES:
            result[family.name] = {
                tuple(
                    s.labels[k] for k in ("site", "category", "channel") if k in s.labels
                ): s.value
                for s in family.samples
                if not s.name.endswith("_created")
            }
    return result


def add_alert(
    session: Session,
    study: Study,
    user: User,
    category: AlertCategory,
    *,
    status: AlertStatus = AlertStatus.OPEN,
    breaches: int = 0,
) -> Alert:
    """An alert on ``study`` with ``breaches`` missed deadlines recorded."""
    now = datetime.now(UTC)
    alert = Alert(
        study_id=study.id,
        site_id=study.site_id,
        category=category,
        finding="finding",
        raised_by_id=user.id,
        ack_due_at=now + timedelta(minutes=15),
        status=status,
        escalation_level=breaches,
    )
    if status is AlertStatus.ACKNOWLEDGED:
        alert.acknowledged_by, alert.acknowledged_at = "Dr Who", now
    session.add(alert)
    session.flush()
    for level in range(1, breaches + 1):
        session.add(AlertBreach(alert_id=alert.id, escalation_level=level, deadline_at=now))
    session.flush()
    return alert


def add_message(session: Session, site: Site, *, sse: bool, age: timedelta) -> list[Delivery]:
    """A message for ``site`` whose deliveries were created ``age`` ago."""
    message = add_outbox_message(session, site, sse=sse)
    session.flush()
    deliveries = list(session.scalars(select(Delivery).where(Delivery.message_id == message.id)))
    for delivery in deliveries:
        delivery.created_at = datetime.now(UTC) - age
    session.flush()
    return deliveries


def test_alert_and_delivery_numbers_come_from_the_database(
    loopback_client: TestClient, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        north, south, east = (add_site(session, code) for code in ("NORTH", "SOUTH", "EAST"))
        north.webhook_url, north.webhook_disabled_at = "http://north.example/h", datetime.now(UTC)
        south.webhook_url = "http://south.example/h"
        doctor = add_user(session, "dr.any", Role.RADIOLOGIST, "NORTH", "SOUTH")
        north_study = add_study(session, add_patient(session, north))
        south_study = add_study(session, add_patient(session, south))
        add_alert(session, north_study, doctor, AlertCategory.CRITICAL, breaches=2)
        add_alert(session, north_study, doctor, AlertCategory.CRITICAL, breaches=1)
        add_alert(
            session, north_study, doctor, AlertCategory.URGENT, status=AlertStatus.ACKNOWLEDGED
        )
        add_alert(session, south_study, doctor, AlertCategory.CANCER, breaches=1)
        add_message(session, north, sse=True, age=timedelta(seconds=120))
        add_message(session, north, sse=False, age=timedelta(seconds=30))
        for delivery in add_message(session, south, sse=True, age=timedelta(hours=1)):
            delivery.status = DeliveryStatus.DELIVERED
        session.flush()
        del east

    samples = scrape(loopback_client.get("/metrics").text)

    breaches = samples["worklist_alert_ack_breaches"]
    assert breaches[("NORTH", "critical")] == 3
    assert breaches[("SOUTH", "cancer")] == 1
    assert breaches[("EAST", "critical")] == 0  # zero-filled for every active site
    assert sum(breaches.values()) == 4
    assert len(breaches) == 3 * len(AlertCategory)
    open_alerts = samples["worklist_alerts_open"]
    assert open_alerts[("NORTH", "critical")] == 2
    assert open_alerts[("NORTH", "urgent")] == 0  # acknowledged
    assert open_alerts[("SOUTH", "cancer")] == 1
    assert sum(open_alerts.values()) == 3
    pending = samples["worklist_deliveries_pending"]
    assert pending[("NORTH", "webhook")] == 2
    assert pending[("NORTH", "sse")] == 1
    assert pending[("SOUTH", "webhook")] == pending[("SOUTH", "sse")] == 0
    assert len(pending) == 3 * len(DeliveryChannel)
    oldest = samples["worklist_delivery_oldest_pending_seconds"]
    assert 120 <= oldest[("NORTH", "webhook")] < 180
    assert 120 <= oldest[("NORTH", "sse")] < 180
    assert oldest[("SOUTH", "webhook")] == 0
    assert samples["worklist_webhook_endpoint_disabled"] == {("NORTH",): 1, ("SOUTH",): 0}


def test_breaches_are_exposed_as_a_counter(
    loopback_client: TestClient, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        add_site(session, "NORTH")

    body = loopback_client.get("/metrics").text

    assert "# TYPE worklist_alert_ack_breaches_total counter" in body
    assert 'worklist_alert_ack_breaches_total{category="critical",site="NORTH"} 0.0' in body


def test_metrics_answer_without_the_database_numbers_while_it_is_down(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    no_db = settings.model_copy(update={"database_url": CLOSED_DATABASE})
    with TestClient(create_app(no_db), client=LOOPBACK_CLIENT) as down:
        response = down.get("/metrics")

    assert response.status_code == 200
    assert scrape(response.text) == {}


def test_metrics_answer_in_bounded_time_while_the_tables_are_locked(
    loopback_client: TestClient, db: sessionmaker[Session], engine: Engine
) -> None:
    with db() as session, session.begin():
        add_site(session, "NORTH")
    answered: list[httpx.Response] = []
    with engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE"))
        scraper = threading.Thread(target=lambda: answered.append(loopback_client.get("/metrics")))
        scraper.start()
        scraper.join(20)
        blocker.rollback()
    scraper.join(10)

    assert answered, "/metrics waited on the locked table"
    assert answered[0].status_code == 200
    assert scrape(answered[0].text) == {}
    assert "# HELP worklist_ingest_instances_total" in answered[0].text
