"""Escalation: a missed acknowledgement deadline raises the level, records the breach, tells
the trust again (webhook and stream) and is counted; an acknowledged alert never escalates.

The job runs at a given time (``now``) rather than after waiting for a deadline to pass,
so what is due never depends on how fast the machine is.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    TRUST_A,
    LiveApi,
    Network,
    audit_actions,
    deliveries,
    messages,
    running_dispatcher,
)
from tests.conftest import run_jobs
from tests.receiver import WebhookReceiver
from worklist.alerts import escalation
from worklist.alerts.escalation import escalate_overdue
from worklist.config import ALERT_CATEGORIES, Settings, parse_duration_map
from worklist.enums import DeliveryChannel
from worklist.metrics import ALERT_ESCALATIONS
from worklist.models import Alert, AlertBreach
from worklist.worker import Job

# Not the default (critical=15m): the deadlines come from the settings.
DEADLINES = "critical=10m,urgent=4h,significant_unexpected=72h,cancer=72h"
CRITICAL = timedelta(minutes=10)
MOMENT = timedelta(milliseconds=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The package's settings with a ten-minute deadline for critical alerts."""
    return _with_deadlines(settings, DEADLINES)


def _with_deadlines(settings: Settings, deadlines: str) -> Settings:
    parsed = parse_duration_map(deadlines, ALERT_CATEGORIES)
    return settings.model_copy(update={"alert_ack_deadlines": parsed})


def _escalations(site: str, category: str) -> float:
    return sum(
        sample.value
        for metric in ALERT_ESCALATIONS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels == {"site": site, "category": category}
    )


def _escalate_at(settings: Settings, now: datetime, redis_url: str | None = None) -> int:
    """Run the escalation job once, as at ``now``; how many alerts it escalated."""
    job = Job("escalate_alerts", lambda session, s: escalate_overdue(session, s, now=now))
    return run_jobs(settings, (job,), redis_url=redis_url)["escalate_alerts"]


def _due(alert: dict[str, Any] | Alert) -> datetime:
    due = alert.ack_due_at if isinstance(alert, Alert) else alert["ack_due_at"]
    return due if isinstance(due, datetime) else datetime.fromisoformat(due)


def _alert(db: sessionmaker[Session], alert_id: str) -> Alert:
    with db() as session:
        return session.get_one(Alert, alert_id)


def test_a_missed_deadline_escalates_records_the_breach_and_tells_the_trust_again(
    live_api: LiveApi,
    network: Network,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    counted = _escalations(TRUST_A, "critical")
    with running_dispatcher(settings), live_api.sse(network["alert_a"]) as reader:
        raised = live_api.raise_alert(network["rad_b"], network.study_uid)
        [first] = reader.events(1)
        assert _escalate_at(settings, _due(raised) - MOMENT) == 0  # not yet due

        assert _escalate_at(settings, _due(raised), settings.require_redis_url()) == 1
        [event] = reader.events(1)
        received = webhook_receiver.wait_accepted(2)

    assert (first.event, event.event) == ("alert.raised", "alert.escalated")
    assert event.data is not None
    assert event.data["id"] == raised["id"]
    assert event.data["escalation_level"] == 1
    alert = _alert(db, raised["id"])
    assert alert.escalation_level == 1
    missed = _due(raised)
    assert alert.ack_due_at == missed + CRITICAL  # the next deadline runs from the escalation
    assert datetime.fromisoformat(event.data["ack_due_at"]) == alert.ack_due_at
    with db() as session:
        [breach] = session.scalars(select(AlertBreach))
    assert (str(breach.alert_id), breach.escalation_level, breach.deadline_at) == (
        raised["id"],
        1,
        missed,
    )
    escalated = messages(db, raised["id"])[-1]
    assert escalated.type == "alert.escalated"
    channels = {d.channel for d in deliveries(db, raised["id"]) if d.message_id == escalated.id}
    assert channels == {DeliveryChannel.WEBHOOK, DeliveryChannel.SSE}
    # The webhook re-delivers: the trust's endpoint got the escalation, signed.
    assert [(r.type, r.verified) for r in received] == [
        ("alert.raised", True),
        ("alert.escalated", True),
    ]
    assert received[1].webhook_id == escalated.webhook_id
    [audited] = [row for row in audit_actions(db) if row.action == "alert.escalated"]
    assert (audited.actor, audited.actor_kind) == ("worker", "system")
    assert audited.detail["escalation_level"] == 1
    assert _escalations(TRUST_A, "critical") == counted + 1
    metrics = live_api.http.get("/metrics").text
    assert 'worklist_alert_escalations_total{category="critical",site="TRUST_A"}' in metrics


def test_an_alert_left_open_escalates_again_at_each_new_deadline(
    live_api: LiveApi, network: Network, db: sessionmaker[Session], settings: Settings
) -> None:
    raised = live_api.raise_alert(network["rad_b"], network.study_uid)

    assert _escalate_at(settings, _due(raised)) == 1
    second = _due(_alert(db, raised["id"]))
    assert _escalate_at(settings, second - MOMENT) == 0
    assert _escalate_at(settings, second) == 1

    assert _alert(db, raised["id"]).escalation_level == 2
    with db() as session:
        levels = [b.escalation_level for b in session.scalars(select(AlertBreach).order_by("id"))]
    assert levels == [1, 2]
    shown = live_api.http.get(f"/api/v1/alerts/{raised['id']}", headers=network["alert_a"])
    assert shown.json()["escalation_level"] == 2
    events = [d["event"] for d in shown.json()["deliveries"]]
    assert events.count("alert.escalated") == 4  # two escalations x (webhook, sse)


def test_an_alert_acknowledged_in_time_never_escalates(
    live_api: LiveApi, network: Network, db: sessionmaker[Session], settings: Settings
) -> None:
    taken = live_api.raise_alert(network["rad_b"], network.study_uid)
    left = live_api.raise_alert(network["rad_b"], network.study_uid)
    response = live_api.http.post(
        f"/api/v1/alerts/{taken['id']}/acknowledge",
        json={"acknowledged_by": "Dr On Time"},
        headers=network["alert_a"],
    )
    assert response.status_code == 200

    late = max(_due(taken), _due(left))
    assert _escalate_at(settings, late) == 1
    assert _escalate_at(settings, late) == 0  # the next deadline is ten minutes on

    assert _alert(db, taken["id"]).escalation_level == 0
    assert _alert(db, left["id"]).escalation_level == 1
    assert [m.type for m in messages(db, taken["id"])] == ["alert.raised", "alert.acknowledged"]
    with db() as session:
        assert [str(b.alert_id) for b in session.scalars(select(AlertBreach))] == [left["id"]]


def test_concurrent_escalation_runs_escalate_each_overdue_alert_once(
    live_api: LiveApi,
    network: Network,
    db: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alerts = [live_api.raise_alert(network["rad_b"], network.study_uid) for _ in range(24)]
    raised = [alert["id"] for alert in alerts]
    due = max(_due(alert) for alert in alerts)
    # Small batches make the runs interleave; every run is at the same moment, when every
    # alert is overdue and none can be due a second time.
    monkeypatch.setattr(escalation, "ESCALATE_BATCH", 5)
    runners = 3
    barrier = threading.Barrier(runners)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            while done := _escalate_at(settings, due):
                counts.append(done)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(counts) == len(raised)
    assert {_alert(db, alert_id).escalation_level for alert_id in raised} == {1}
    with db() as session:
        breaches = list(session.scalars(select(AlertBreach)))
    assert sorted(str(b.alert_id) for b in breaches) == sorted(raised)
    escalated = [m for m in messages(db) if m.type == "alert.escalated"]
    assert sorted(str(m.alert_id) for m in escalated) == sorted(raised)


def test_the_deadline_of_each_category_comes_from_the_settings(
    live_api: LiveApi, network: Network
) -> None:
    expected: dict[str, timedelta] = {
        "critical": CRITICAL,
        "urgent": timedelta(hours=4),
        "significant_unexpected": timedelta(hours=72),
        "cancer": timedelta(hours=72),
    }
    for category, deadline in expected.items():
        alert: dict[str, Any] = live_api.raise_alert(
            network["rad_b"], network.study_uid, category=category
        )
        raised_at = datetime.fromisoformat(alert["raised_at"])
        assert datetime.fromisoformat(alert["ack_due_at"]) - raised_at == deadline, category
