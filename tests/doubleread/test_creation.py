"""A second read is created when a report is first signed, as the site's first matching
rule says: every study (share 1), a drawn share (peer review), or none."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import SOUTH, audit_rows
from tests.doubleread.conftest import FIRST, MANAGER, Network
from worklist.enums import AuditAction


def test_share_one_makes_a_double_read_of_every_matching_study(
    network: Network, db: sessionmaker[Session]
) -> None:
    network.set_rules({"modality": "MG", "share": 1, "other_trust": True})
    uid = network.add_study(modalities=["MG"], description="MAMMO SCREENING")
    network.report(uid)
    [read] = network.reads(uid)
    assert (read.kind, read.status, read.first_reader_id) == (
        "double_read",
        "open",
        network.ids[FIRST],
    )
    assert read.other_trust is True
    assert read.reader_id is None
    assert read.parent_id is None
    [row] = audit_rows(db, AuditAction.DOUBLE_READ_CREATED)
    assert row.study_uid == uid
    assert row.detail["id"] == read.id
    assert row.detail["kind"] == "double_read"


def test_a_study_no_rule_matches_gets_no_second_read(network: Network) -> None:
    network.set_rules({"modality": "MG", "share": 1}, {"subspecialty": "neuro", "share": 1})
    uid = network.add_study(modalities=["CT"], subspecialty="breast")
    network.report(uid)
    assert network.reads(uid) == []


def test_a_site_without_rules_has_no_second_reads(network: Network) -> None:
    network.set_rules({"share": 1}, code=SOUTH)
    uid = network.add_study()
    network.report(uid)
    assert network.reads() == []


def test_a_peer_review_share_draws_each_study(network: Network) -> None:
    network.set_rules({"modality": "CT", "share": 0.1})
    network.draw(0.0999)
    picked = network.add_study()
    network.report(picked)
    network.draw(0.1)
    passed = network.add_study()
    network.report(passed)
    [read] = network.reads()
    assert network.read_of(picked) == read.id
    assert read.kind == "peer_review"
    assert network.reads(passed) == []


def test_the_first_matching_rule_decides(network: Network) -> None:
    network.set_rules(
        {"subspecialty": "neuro", "share": 0.5, "other_trust": True},
        {"modality": "CT", "share": 1},
    )
    network.draw(0.9)  # the neuro rule matches first and passes this study by
    neuro = network.add_study(subspecialty="neuro")
    network.report(neuro)
    other = network.add_study(subspecialty=None)
    network.report(other)
    assert network.reads(neuro) == []
    [read] = network.reads(other)
    assert read.kind == "double_read"
    assert read.other_trust is False


def test_an_addendum_creates_no_further_read(network: Network) -> None:
    network.set_rules({"share": 1})
    uid = network.add_study()
    network.report(uid)
    url = f"/api/v1/studies/{uid}/report/addenda"
    assert (
        network.send("POST", FIRST, url, json={"text": "Compare with priors."}).status_code == 201
    )
    assert len(network.reads(uid)) == 1


def test_the_read_appears_in_the_managers_list(network: Network) -> None:
    network.set_rules({"share": 1})
    uid = network.add_study()
    network.report(uid)
    [item] = network.queue(MANAGER)
    assert item["study_uid"] == uid
    assert item["first_reader"] == FIRST
    assert item["status"] == "open"
    assert item["kind"] == "double_read"
