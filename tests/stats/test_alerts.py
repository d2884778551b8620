"""``/stats/alerts``: acknowledgement within the category's deadline, time to acknowledge,
escalations and breaches, with an alert acknowledged late, escalated ones and one not yet
due (a fixed ``now``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tests.api.conftest import NORTH, SOUTH
from tests.stats.conftest import ADMIN, MANAGER, NOW, RAD_NORTH, Network, add_examination
from worklist.config import Settings
from worklist.enums import AlertCategory, AlertStatus
from worklist.models import Alert, AlertBreach, Site, User
from worklist.stats import service
from worklist.stats.schemas import AlertGroup, Alerts
from worklist.stats.scope import Period

RAISED = datetime(2030, 2, 4, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def add_alert(
    session: Session,
    site: Site,
    by: User,
    category: AlertCategory,
    *,
    raised_at: datetime = RAISED,
    acknowledged_after: timedelta | None = None,
    breaches: int = 0,
) -> None:
    """An alert on a new study of ``site``, acknowledged after the delay given (or open),
    escalated once per breach."""
    study = add_examination(session, site, at=raised_at - timedelta(hours=1))
    alert = Alert(
        study_id=study.id,
        site_id=site.id,
        category=category,
        finding="finding",
        raised_by_id=by.id,
        raised_at=raised_at,
        ack_due_at=raised_at + timedelta(minutes=15),
        escalation_level=breaches,
        status=AlertStatus.OPEN if acknowledged_after is None else AlertStatus.ACKNOWLEDGED,
    )
    if acknowledged_after is not None:
        alert.acknowledged_by = "Dr Who"
        alert.acknowledged_at = raised_at + acknowledged_after
    session.add(alert)
    session.flush()
    for level in range(1, breaches + 1):
        session.add(AlertBreach(alert_id=alert.id, escalation_level=level, deadline_at=raised_at))
    session.flush()


@pytest.fixture
def alerted(network: Network) -> Network:
    """NORTH: critical in time (10 min), late (40 min, escalated once), open and escalated
    twice, open and not yet due; urgent in 3 h. SOUTH: critical late (20 min, once)."""
    north, south = network.sites[NORTH], network.sites[SOUTH]
    by = network.users[RAD_NORTH]
    with network.db() as session, session.begin():
        add_alert(session, north, by, AlertCategory.CRITICAL, acknowledged_after=10 * MINUTE)
        add_alert(
            session, north, by, AlertCategory.CRITICAL, acknowledged_after=40 * MINUTE, breaches=1
        )
        add_alert(session, north, by, AlertCategory.CRITICAL, breaches=2)
        add_alert(session, north, by, AlertCategory.CRITICAL, raised_at=NOW - 5 * MINUTE)
        add_alert(session, north, by, AlertCategory.URGENT, acknowledged_after=180 * MINUTE)
        add_alert(
            session, south, by, AlertCategory.CRITICAL, acknowledged_after=20 * MINUTE, breaches=1
        )
        add_alert(  # before the period
            session, north, by, AlertCategory.CRITICAL, raised_at=RAISED - timedelta(days=30)
        )
    return network


def _alerts(network: Network, settings: Settings, who: str) -> Alerts:
    async def call(session: AsyncSession, user: User) -> Alerts:
        return await service.alerts(
            session=session,
            user=user,
            settings=settings,
            period=Period(date(2030, 2, 1)),
            address=None,
            now=NOW,
        )

    return network.as_user(who, call)


def _group(
    site: str | None,
    category: AlertCategory,
    count: int,
    share: float | None,
    p50: float | None,
    p90: object,
    escalations: int,
    breaches: int,
) -> dict[str, object]:
    return {
        "site": site,
        "category": category,
        "count": count,
        "acknowledged_within_deadline_share": share,
        "ack_p50_minutes": p50,
        "ack_p90_minutes": p90,
        "escalations": escalations,
        "breaches": breaches,
    }


def _dumps(groups: list[AlertGroup]) -> list[dict[str, object]]:
    return [g.model_dump() for g in groups]


def test_a_manager_sees_their_sites_compliance_and_the_networks(
    alerted: Network, settings: Settings
) -> None:
    figures = _alerts(alerted, settings, MANAGER)

    # Critical: 4 raised, 3 due (the fourth's 15 minutes are not over), 1 in time.
    # Acknowledged after 10 and 40 minutes: p50 25, p90 10 + 0.9 * 30.
    assert _dumps(figures.groups) == [
        _group(NORTH, AlertCategory.CRITICAL, 4, 1 / 3, 25, pytest.approx(37), 2, 3),
        _group(NORTH, AlertCategory.URGENT, 1, 1.0, 180, 180, 0, 0),
    ]
    # The network's critical alerts: acknowledged after 10, 20, 40: p50 20, p90 20 + 0.8 * 20.
    assert _dumps(figures.network) == [
        _group(None, AlertCategory.CRITICAL, 5, 1 / 4, 20, pytest.approx(36), 3, 4),
        _group(None, AlertCategory.URGENT, 1, 1.0, 180, 180, 0, 0),
    ]


def test_an_admin_sees_every_site(alerted: Network, settings: Settings) -> None:
    figures = _alerts(alerted, settings, ADMIN)

    assert [(g.site, g.category) for g in figures.groups] == [
        (NORTH, AlertCategory.CRITICAL),
        (NORTH, AlertCategory.URGENT),
        (SOUTH, AlertCategory.CRITICAL),
    ]
    assert _dumps(figures.groups)[2] == _group(SOUTH, AlertCategory.CRITICAL, 1, 0.0, 20, 20, 1, 1)
