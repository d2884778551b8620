"""Who may read which figure: managers and admins every one, a radiologist only their own
workload, the trusts' alert and order clients none; each read is one audit row."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import audit_rows
from tests.stats.conftest import (
    ADMIN,
    ALERTS,
    MANAGER,
    ORDERS,
    RAD_NORTH,
    Network,
)
from worklist.enums import AuditAction

FIGURES = ("turnaround", "breaches", "backlog", "demand", "flows", "alerts", "workload")
ALLOWED = {
    ADMIN: set(FIGURES),
    MANAGER: set(FIGURES),
    RAD_NORTH: {"workload"},
    ALERTS: set(),
    ORDERS: set(),
}
TABLE = [(who, figure) for who in ALLOWED for figure in FIGURES]


@pytest.mark.parametrize(("who", "figure"), TABLE)
def test_the_role_decides_which_figures_answer(
    network: Network, client: TestClient, who: str, figure: str
) -> None:
    response = client.get(f"/api/v1/stats/{figure}", headers=network.headers[who])

    assert response.status_code == (200 if figure in ALLOWED[who] else 403), response.text


def test_figures_need_a_token(network: Network, client: TestClient) -> None:
    assert client.get("/api/v1/stats/backlog").status_code == 401


def test_each_figure_read_is_one_audit_row(network: Network, client: TestClient) -> None:
    for figure in FIGURES:
        client.get(f"/api/v1/stats/{figure}", headers=network.headers[MANAGER])

    views = audit_rows(network.db, AuditAction.STATS_VIEW)
    breaches = audit_rows(network.db, AuditAction.STATS_BREACHES_VIEW)
    assert [r.detail["figure"] for r in views] == [f for f in FIGURES if f != "breaches"]
    assert [(r.actor, r.detail["study_uids"]) for r in breaches] == [(MANAGER, [])]


def test_a_refused_read_is_not_audited(network: Network, client: TestClient) -> None:
    client.get("/api/v1/stats/backlog", headers=network.headers[RAD_NORTH])

    assert audit_rows(network.db, AuditAction.STATS_VIEW) == []
