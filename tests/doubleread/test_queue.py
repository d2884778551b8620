"""The double-read queue: who may take a read (never the first reader; another trust's
radiologist when asked), claim and next, and what managers see."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.doubleread.conftest import (
    ADMIN,
    BOTH,
    FIRST,
    MANAGER,
    SECOND,
    SOUTH_MANAGER,
    THIRD,
    VISITOR,
    Network,
)
from worklist.enums import AuditAction
from worklist.models import StudyGrant


def _ids(items: list[dict[str, object]]) -> list[object]:
    return [item["id"] for item in items]


def _reported(network: Network, *, other_trust: bool = False) -> tuple[str, int]:
    network.set_rules({"share": 1, "other_trust": other_trust})
    uid = network.add_study()
    network.report(uid)
    return uid, network.read_of(uid)


def test_the_first_reader_never_sees_nor_takes_their_own_read(network: Network) -> None:
    _, read_id = _reported(network)
    assert network.queue(FIRST) == []
    assert network.claim(FIRST, read_id).status_code == 404
    assert network.send("POST", FIRST, "/api/v1/double-reads/next").status_code == 204
    assert network.send("GET", FIRST, f"/api/v1/double-reads/{read_id}").status_code == 404


def test_a_same_trust_read_is_for_radiologists_with_privileges_at_the_site(
    network: Network,
) -> None:
    uid, read_id = _reported(network)
    [item] = network.queue(SECOND)
    assert item["id"] == read_id
    assert item["study_uid"] == uid
    assert item["site"] == "NORTH"
    assert item["first_reader"] is None  # blinded: not even who wrote it
    assert _ids(network.queue(BOTH)) == [read_id]
    assert network.queue(VISITOR) == []
    assert network.claim(VISITOR, read_id).status_code == 404


def test_an_other_trust_read_is_for_radiologists_employed_elsewhere(network: Network) -> None:
    _, read_id = _reported(network, other_trust=True)
    # SECOND and THIRD are NORTH's own; BOTH works at NORTH but is employed by SOUTH.
    assert network.queue(SECOND) == []
    assert network.queue(THIRD) == []
    assert _ids(network.queue(BOTH)) == _ids(network.queue(VISITOR)) == [read_id]
    assert network.claim(SECOND, read_id).status_code == 404


def test_a_reader_without_privileges_is_granted_the_study_while_they_hold_the_read(
    network: Network, db: sessionmaker[Session]
) -> None:
    uid, read_id = _reported(network, other_trust=True)
    assert network.send("GET", VISITOR, f"/api/v1/studies/{uid}").status_code == 404
    claimed = network.claim(VISITOR, read_id)
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert body["status"] == "claimed"
    assert body["reader"] == VISITOR
    assert body["claimed_at"]
    with db() as session:
        [grant] = session.scalars(select(StudyGrant)).all()
    assert (grant.user_id, grant.reason, grant.reason_id) == (
        network.ids[VISITOR],
        "double_read",
        read_id,
    )
    detail = network.send("GET", VISITOR, f"/api/v1/studies/{uid}")
    assert detail.status_code == 200
    [row] = audit_rows(db, AuditAction.DOUBLE_READ_CLAIMED)
    assert row.actor == VISITOR
    assert row.detail["grant"] is True


def test_a_reader_with_privileges_needs_no_grant(
    network: Network, db: sessionmaker[Session]
) -> None:
    _, read_id = _reported(network)
    assert network.claim(SECOND, read_id).status_code == 200
    with db() as session:
        assert session.scalars(select(StudyGrant)).all() == []


def test_a_taken_read_is_gone_from_other_queues_and_claiming_it_conflicts(
    network: Network,
) -> None:
    _, read_id = _reported(network)
    assert network.claim(SECOND, read_id).status_code == 200
    assert network.claim(SECOND, read_id).status_code == 200  # again: unchanged
    assert network.queue(THIRD) == []
    assert network.claim(THIRD, read_id).status_code == 409
    assert [item["status"] for item in network.queue(SECOND)] == ["claimed"]


def test_next_hands_out_the_oldest_open_read_then_204(network: Network) -> None:
    network.set_rules({"share": 1})
    older, newer = network.add_study(), network.add_study()
    network.report(older)
    network.report(newer)
    first = network.send("POST", "dr.second", "/api/v1/double-reads/next")
    assert first.status_code == 200
    assert first.json()["study_uid"] == older
    second = network.send("POST", THIRD, "/api/v1/double-reads/next")
    assert second.status_code == 200
    assert second.json()["study_uid"] == newer
    assert network.send("POST", BOTH, "/api/v1/double-reads/next").status_code == 204


def test_a_radiologist_who_read_the_first_report_may_not_take_the_read(network: Network) -> None:
    uid, read_id = _reported(network)
    assert network.send("GET", THIRD, f"/api/v1/studies/{uid}/report").status_code == 200
    assert network.queue(THIRD) == []
    assert network.claim(THIRD, read_id).status_code == 404
    assert network.send("POST", THIRD, "/api/v1/double-reads/next").status_code == 204
    assert network.claim(SECOND, read_id).status_code == 200


def test_managers_see_their_sites_reads_and_admins_all_but_neither_takes_one(
    network: Network,
) -> None:
    _, read_id = _reported(network)
    assert _ids(network.queue(MANAGER)) == _ids(network.queue(ADMIN)) == [read_id]
    assert network.queue(SOUTH_MANAGER) == []
    assert network.send("GET", SOUTH_MANAGER, f"/api/v1/double-reads/{read_id}").status_code == 404
    assert network.claim(MANAGER, read_id).status_code == 403
    assert network.send("POST", ADMIN, "/api/v1/double-reads/next").status_code == 403


def test_reading_a_read_is_audited(network: Network, db: sessionmaker[Session]) -> None:
    uid, read_id = _reported(network)
    assert network.send("GET", MANAGER, f"/api/v1/double-reads/{read_id}").status_code == 200
    [row] = audit_rows(db, AuditAction.DOUBLE_READ_VIEW)
    assert (row.actor, row.study_uid, row.detail["id"]) == (MANAGER, uid, read_id)


def test_a_manager_reads_the_first_report_on_one_read_not_in_the_list(network: Network) -> None:
    _, read_id = _reported(network)
    [listed] = network.queue(MANAGER)
    assert listed["first_reader"] == FIRST
    assert listed["first_report"] is None
    one = network.send("GET", MANAGER, f"/api/v1/double-reads/{read_id}").json()
    assert one["first_report"]["author"] == FIRST
