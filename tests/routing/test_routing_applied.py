"""Studies are routed when the worker makes them ready (body part read from a stored file)
and when their order arrives; a subspecialty set by hand or a reported study stays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import bearer, client
from tests.dicomweb.conftest import DR_A, gateway, sites, users
from tests.orders.support import apply, new_order, promote, push_study, site_id, study_row
from worklist.config import Settings
from worklist.enums import StudyStatus
from worklist.events import EventType
from worklist.models import RoutingRule, Study, User
from worklist.orders.content import OrderControl
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec

__all__ = ["client", "gateway", "sites", "users"]

ACCESSION = "ACC-RT-1"


def set_rules(db: sessionmaker[Session], *rules: RoutingRule) -> None:
    """Store the rule list (positions as given)."""
    with db() as session, session.begin():
        session.add_all(rules)


def head_ct(*, birth_date: str = "19600214", body_part: str | None = "HEAD") -> StudySpec:
    """An RXA CT of ``body_part`` (two series of two images), described "CT scan"."""
    return StudySpec(
        patient=PatientSpec("RXA-001", name="Smith^Anne", birth_date=birth_date, sex="F"),
        series=[SeriesSpec(modality="CT", count=2, body_part=body_part) for _ in range(2)],
        accession_number=ACCESSION,
        description="CT scan",
    )


def routing(db: sessionmaker[Session], study_uid: str) -> tuple[str | None, int | None]:
    study = study_row(db, study_uid)
    return study.subspecialty, study.subspecialty_rule


def test_a_study_made_ready_is_routed_on_the_body_part_its_files_carry(
    gateway: Gateway,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    set_rules(
        db,
        RoutingRule(position=0, subspecialty="msk", body_part="KNEE"),
        RoutingRule(position=1, subspecialty="neuro", modality="CT", body_part="HEAD"),
    )
    uid = push_study(gateway.port, head_ct(body_part="head"), tmp_path).spec.study_uid
    assert routing(db, uid) == (None, None)

    assert promote(settings, db, uid) == 1

    study = study_row(db, uid)
    assert (study.status, study.body_part) == (StudyStatus.READY, "HEAD")
    assert routing(db, uid) == ("neuro", 1)
    item = client.get(f"/api/v1/studies/{uid}", headers=bearer(settings, users[DR_A])).json()
    assert (item["subspecialty"], item["subspecialty_rule"]) == ("neuro", 1)


def test_a_child_is_routed_paediatric_by_age_on_the_study_date(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    set_rules(
        db,
        RoutingRule(position=0, subspecialty="paediatric", max_age_years=16),
        RoutingRule(position=1, subspecialty="neuro", modality="CT", body_part="HEAD"),
    )
    # Studied on 2026-11-01: the child is 15, the adult 66.
    child = push_study(gateway.port, head_ct(birth_date="20110601"), tmp_path / "child")
    adult_spec = replace(head_ct(), accession_number="ACC-RT-2")
    adult_spec.patient = PatientSpec("RXA-002", name="Jones^Bob", birth_date="19600101")
    adult = push_study(gateway.port, adult_spec, tmp_path / "adult")

    promote(settings, db, adult.spec.study_uid)

    assert routing(db, child.spec.study_uid) == ("paediatric", 0)
    assert routing(db, adult.spec.study_uid) == ("neuro", 1)


def test_a_study_without_body_part_matches_no_body_part_rule(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    set_rules(
        db,
        RoutingRule(position=0, subspecialty="neuro", body_part="HEAD"),
        RoutingRule(position=1, subspecialty="general", modality="CT"),
    )
    uid = push_study(gateway.port, head_ct(body_part=None), tmp_path).spec.study_uid

    promote(settings, db, uid)

    assert study_row(db, uid).body_part is None
    assert routing(db, uid) == ("general", 1)


@pytest.fixture
def ready_unrouted(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> str:
    """A ready RXA study no rule matches until its order names the procedure XCHEA."""
    set_rules(db, RoutingRule(position=0, subspecialty="neuro", procedure_pattern="^xchea$"))
    uid = push_study(gateway.port, head_ct(), tmp_path).spec.study_uid
    promote(settings, db, uid)
    assert routing(db, uid) == (None, None)
    return uid


def test_an_order_arriving_routes_its_study_and_announces_it(
    ready_unrouted: str, db: sessionmaker[Session], settings: Settings
) -> None:
    applied = apply(settings, site_id(db, "RXA"), new_order(ACCESSION))

    assert routing(db, ready_unrouted) == ("neuro", 0)
    [event] = applied.of_type(EventType.STUDY_UPDATED)
    assert event.study_uid == ready_unrouted
    assert event.data["subspecialty"] == "neuro"
    assert event.data["subspecialty_rule"] == 0


def test_an_order_change_routes_the_study_again(
    ready_unrouted: str, db: sessionmaker[Session], settings: Settings
) -> None:
    rxa = site_id(db, "RXA")
    apply(settings, rxa, new_order(ACCESSION))

    apply(settings, rxa, new_order(ACCESSION, OrderControl.CHANGE, procedure_code="XMKNE"))

    assert routing(db, ready_unrouted) == (None, None)


def test_an_order_leaves_a_subspecialty_set_by_hand_and_a_reported_study(
    gateway: Gateway,
    ready_unrouted: str,
    db: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    reported_spec = replace(head_ct(), accession_number="ACC-RT-3")
    reported = push_study(gateway.port, reported_spec, tmp_path / "reported").spec.study_uid
    with db() as session, session.begin():
        session.execute(
            update(Study)
            .where(Study.study_uid == ready_unrouted)
            .values(subspecialty="msk", subspecialty_rule=None)
        )
        session.execute(
            update(Study).where(Study.study_uid == reported).values(status=StudyStatus.REPORTED)
        )
    rxa = site_id(db, "RXA")

    by_hand = apply(settings, rxa, new_order(ACCESSION))
    apply(settings, rxa, new_order("ACC-RT-3"))

    assert routing(db, ready_unrouted) == ("msk", None)
    assert routing(db, reported) == (None, None)
    assert all("subspecialty" not in e.data for e in by_hand.of_type(EventType.STUDY_UPDATED))


def test_an_order_that_came_first_routes_the_study_when_it_is_made_ready(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    set_rules(db, RoutingRule(position=0, subspecialty="neuro", procedure_pattern="^xchea$"))
    apply(settings, site_id(db, "RXA"), new_order(ACCESSION))
    uid = push_study(gateway.port, head_ct(), tmp_path).spec.study_uid

    promote(settings, db, uid)

    assert routing(db, uid) == ("neuro", 0)
