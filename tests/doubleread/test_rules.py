"""``GET/PUT /api/v1/sites/{code}/double-reading``: who may, what is valid, what is audited."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, audit_rows
from tests.doubleread.conftest import (
    ADMIN,
    ALERTS,
    FIRST,
    MANAGER,
    SOUTH_MANAGER,
    Network,
    rules_url,
)
from worklist.enums import AuditAction

SCREENING = {"modality": "MG", "subspecialty": "breast", "share": 1.0, "other_trust": True}
AUDIT = {"modality": None, "subspecialty": None, "share": 0.05, "other_trust": False}


def test_a_manager_replaces_and_reads_their_sites_ordered_rules(network: Network) -> None:
    put = network.send("PUT", MANAGER, rules_url(), json=[SCREENING, {"share": 0.05}])
    assert put.status_code == 200, put.text
    assert put.json() == [SCREENING, AUDIT]
    got = network.send("GET", MANAGER, rules_url())
    assert got.status_code == 200
    assert got.json() == [SCREENING, AUDIT]

    replaced = network.send("PUT", MANAGER, rules_url(), json=[AUDIT])
    assert replaced.json() == [AUDIT]
    assert network.send("PUT", MANAGER, rules_url(), json=[]).json() == []
    assert network.send("GET", MANAGER, rules_url()).json() == []


def test_an_admin_sets_any_sites_rules(network: Network) -> None:
    assert network.send("PUT", ADMIN, rules_url(SOUTH), json=[AUDIT]).status_code == 200
    assert network.send("GET", ADMIN, rules_url(SOUTH)).json() == [AUDIT]
    assert network.send("GET", SOUTH_MANAGER, rules_url(SOUTH)).json() == [AUDIT]


def test_another_sites_manager_is_told_the_site_does_not_exist(network: Network) -> None:
    network.set_rules(AUDIT)
    assert network.send("GET", SOUTH_MANAGER, rules_url(NORTH)).status_code == 404
    assert network.send("PUT", SOUTH_MANAGER, rules_url(NORTH), json=[]).status_code == 404
    assert network.send("GET", ADMIN, rules_url()).json() == [AUDIT]
    assert network.send("GET", ADMIN, rules_url("NOWHERE")).status_code == 404


@pytest.mark.parametrize("who", [FIRST, ALERTS])
def test_radiologists_and_clients_are_refused(network: Network, who: str) -> None:
    assert network.send("GET", who, rules_url()).status_code == 403
    assert network.send("PUT", who, rules_url(), json=[AUDIT]).status_code == 403


@pytest.mark.parametrize(
    "rule",
    [
        {"share": 0},
        {"share": -0.5},
        {"share": 1.5},
        {"modality": "MG"},
        {"share": 1, "priority": "stat"},
        {"share": 1, "subspecialty": "astrology"},
        {"share": 1, "modality": ""},
    ],
)
def test_invalid_rules_are_refused_and_nothing_changes(
    network: Network, rule: dict[str, object]
) -> None:
    network.set_rules(SCREENING)
    response = network.send("PUT", MANAGER, rules_url(), json=[rule])
    assert response.status_code == 422, response.text
    assert network.send("GET", MANAGER, rules_url()).json() == [SCREENING]


def test_a_change_is_audited_with_the_list_before_and_after(
    network: Network, db: sessionmaker[Session]
) -> None:
    network.send("PUT", MANAGER, rules_url(), json=[SCREENING])
    network.send("PUT", MANAGER, rules_url(), json=[AUDIT])
    rows = audit_rows(db, AuditAction.DOUBLE_READING_CHANGED)
    assert [row.actor for row in rows] == [MANAGER, MANAGER]
    assert rows[1].site_id == network.sites[NORTH].id
    assert rows[1].detail == {"before": [SCREENING], "after": [AUDIT]}
