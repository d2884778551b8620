"""Submitting a read: the score and text, the grant ending, the first report opening to the
reader, and a discordance going to a third radiologist for arbitration."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.doubleread.conftest import (
    BOTH,
    FIRST,
    FIRST_REPORT,
    MANAGER,
    SECOND,
    THIRD,
    VISITOR,
    Network,
)
from worklist.enums import AuditAction
from worklist.models import StudyGrant


def _claimed(
    network: Network, reader: str = SECOND, *, other_trust: bool = False
) -> tuple[str, int]:
    network.set_rules({"share": 1, "other_trust": other_trust})
    uid = network.add_study()
    network.report(uid)
    read_id = network.read_of(uid)
    assert network.claim(reader, read_id).status_code == 200
    return uid, read_id


def test_a_concordant_read_is_submitted_and_the_first_report_opens_to_the_reader(
    network: Network, db: sessionmaker[Session]
) -> None:
    uid, read_id = _claimed(network)
    assert network.send("GET", SECOND, f"/api/v1/studies/{uid}/report").status_code == 404
    submitted = network.submit(SECOND, read_id, "1")
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "submitted"
    assert body["score"] == "1"
    assert body["submitted_at"]
    assert body["first_reader"] == FIRST  # no longer blinded
    report = network.send("GET", SECOND, f"/api/v1/studies/{uid}/report")
    assert report.status_code == 200
    assert report.json()["text"] == FIRST_REPORT
    assert [r.status for r in network.reads(uid)] == ["submitted"]  # no arbitration
    [row] = audit_rows(db, AuditAction.DOUBLE_READ_SUBMITTED)
    assert row.actor == SECOND
    assert row.detail["score"] == "1"
    assert row.detail["arbitration"] is None


def test_submitting_ends_the_grant_of_a_reader_from_another_trust(
    network: Network, db: sessionmaker[Session]
) -> None:
    uid, read_id = _claimed(network, VISITOR, other_trust=True)
    assert network.send("GET", VISITOR, f"/api/v1/studies/{uid}").status_code == 200
    assert network.submit(VISITOR, read_id, "2a", "Would have said 12 mm.").status_code == 200
    with db() as session:
        assert session.scalars(select(StudyGrant)).all() == []
    assert network.send("GET", VISITOR, f"/api/v1/studies/{uid}").status_code == 404


@pytest.mark.parametrize("score", ["2b", "3a", "3b"])
def test_a_discordant_read_goes_to_a_third_reader_for_arbitration(
    network: Network, score: str
) -> None:
    uid, read_id = _claimed(network)
    assert network.submit(SECOND, read_id, score, "I see no mass.").status_code == 200
    second, arbitration = network.reads(uid)
    assert second.id == read_id
    assert (arbitration.kind, arbitration.status, arbitration.parent_id) == (
        "arbitration",
        "open",
        read_id,
    )
    assert arbitration.first_reader_id == network.ids[FIRST]
    created = audit_rows(network.db, AuditAction.DOUBLE_READ_CREATED)
    assert [row.detail["kind"] for row in created] == ["double_read", "arbitration"]
    assert created[1].detail["parent"] == read_id
    # Neither the first nor the second reader arbitrates.
    assert network.queue(FIRST) == []
    assert [item["kind"] for item in network.queue(SECOND)] == ["double_read"]
    assert network.claim(SECOND, arbitration.id).status_code == 404
    taken = network.claim(THIRD, arbitration.id)
    assert taken.status_code == 200, taken.text
    body = taken.json()
    # The arbiter compares both reads: the first report is open to them, and the second.
    assert body["first_reader"] == FIRST
    assert body["parent"]["reader"] == SECOND
    assert body["parent"]["score"] == score
    assert body["parent"]["text"] == "I see no mass."
    assert network.send("GET", THIRD, f"/api/v1/studies/{uid}/report").status_code == 200
    assert network.submit(THIRD, arbitration.id, "3b", "Mass confirmed.").status_code == 200
    assert len(network.reads(uid)) == 2  # an arbitration is never arbitrated again


def test_a_minor_discrepancy_needs_no_arbitration(network: Network) -> None:
    uid, read_id = _claimed(network)
    assert network.submit(SECOND, read_id, "2a", "Size 12 mm.").status_code == 200
    assert [r.kind for r in network.reads(uid)] == ["double_read"]


def test_only_the_holder_submits_once_with_a_valid_score(network: Network) -> None:
    _, read_id = _claimed(network)
    assert network.submit(THIRD, read_id, "1").status_code == 404  # not theirs to see
    assert network.submit(MANAGER, read_id, "1").status_code == 403
    assert network.submit(SECOND, read_id, "4").status_code == 422
    assert network.submit(SECOND, read_id, "3b").status_code == 422  # discordant: say why
    assert network.submit(SECOND, read_id, "1").status_code == 200
    assert network.submit(SECOND, read_id, "1").status_code == 409


def test_an_open_read_must_be_claimed_before_it_is_submitted(network: Network) -> None:
    network.set_rules({"share": 1})
    uid = network.add_study()
    network.report(uid)
    assert network.submit(BOTH, network.read_of(uid), "1").status_code == 403
