"""One message in, one ACK out: applied once, after the sender is known, all or nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import hl7
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_study, add_user
from tests.hl7 import messages as m
from tests.hl7.conftest import NOTHING, Handle, Stored, run_in_context, set_hosts, stored
from worklist.config import Settings
from worklist.enums import (
    AuditAction,
    OrderStatus,
    PatientSource,
    Priority,
    Role,
    StudyStatus,
)
from worklist.events.bus import STREAM_KEY
from worklist.hl7.errors import AckCode, ErrorCode
from worklist.hl7.service import Hl7Context, Outcome, handle_message
from worklist.models import AuditEvent, Claim, Hl7Message, Hl7Sender, Order, Site, Study

ARRIVED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def msa(outcome: Outcome) -> tuple[str, str]:
    ack = hl7.parse(outcome.ack.decode())
    return str(ack["MSA.F1"]), str(ack["MSA.F2"])


def the_order(db: sessionmaker[Session]) -> Order:
    with db() as session:
        return session.scalars(select(Order)).one()


def test_an_order_is_stored_and_acknowledged_aa(handle: Handle, db: sessionmaker[Session]) -> None:
    outcome = handle(m.orm())

    assert msa(outcome) == ("AA", "MSG00001")
    order = the_order(db)
    assert (order.accession_number, order.source, order.status) == ("ACC1001", "hl7", "active")
    assert (order.nhs_number, order.patient_local_id) == (m.NHS_NUMBER, "RXA1234567")
    assert order.patient_identifiers[1] == {"id": m.NHS_NUMBER, "authority": "NHS", "type": "NH"}
    assert (order.procedure_code, order.referrer_organisation_code) == ("XCHES", "A81001")
    assert order.patient_source == PatientSource.GP
    assert order.last_control == "NW"
    with db() as session:
        message = session.scalars(select(Hl7Message)).one()
        actions = list(session.scalars(select(AuditEvent.action)))
    assert (message.facility, message.control_id, message.ack_code) == (
        m.FACILITY,
        "MSG00001",
        "AA",
    )
    assert message.order_id == order.id
    assert actions == [AuditAction.ORDER_RECEIVED]


def test_the_acks_never_carry_patient_data(handle: Handle) -> None:
    ids = f"RXA1234567^^^RXA^MR~{m.INVALID_NHS_NUMBER}^^^NHS^NH"
    bad = m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr())

    for outcome in (handle(m.orm()), handle(bad)):
        text = outcome.ack.decode()
        for value in ("RXA1234567", m.NHS_NUMBER, m.INVALID_NHS_NUMBER, "SMITH", "ACC1001"):
            assert value not in text


def test_an_unknown_facility_is_rejected_and_nothing_is_stored(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    outcome = handle(m.orm(facility="ELSEWHERE"))

    assert msa(outcome) == ("AR", "MSG00001")
    assert outcome.error is ErrorCode.UNKNOWN_KEY
    assert stored(db) == NOTHING


def test_a_facility_of_an_inactive_site_is_rejected(
    handle: Handle, db: sessionmaker[Session], hl7_site: int
) -> None:
    with db.begin() as session:
        site = session.get(Site, hl7_site)
        assert site is not None
        site.active = False

    assert handle(m.orm()).code is AckCode.REJECT
    assert stored(db) == NOTHING


def test_an_address_outside_the_sites_list_is_rejected(
    handle: Handle, db: sessionmaker[Session], hl7_site: int
) -> None:
    set_hosts(db, hl7_site, ["10.20.30.40"])

    outcome = handle(m.orm(), peer="127.0.0.1")

    assert msa(outcome) == ("AR", "MSG00001")
    assert outcome.reason == "address not registered for the facility"
    assert stored(db) == NOTHING


@pytest.mark.parametrize("peer", ["10.20.30.40", "::ffff:10.20.30.40"])
def test_a_listed_address_is_accepted(
    handle: Handle, db: sessionmaker[Session], hl7_site: int, peer: str
) -> None:
    set_hosts(db, hl7_site, ["10.0.0.1", "10.20.30.40"])

    assert handle(m.orm(), peer=peer).code is AckCode.ACCEPT


def test_an_invalid_nhs_number_is_an_ae_and_nothing_is_stored(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    ids = f"RXA1234567^^^RXA^MR~{m.INVALID_NHS_NUMBER}^^^NHS^NH"

    outcome = handle(m.message(m.msh(), m.pid(identifiers=ids), m.orc(), m.obr()))

    assert msa(outcome) == ("AE", "MSG00001")
    assert outcome.error is ErrorCode.DATA_TYPE
    assert stored(db) == NOTHING


def test_an_unknown_facility_is_rejected_before_its_content_is_judged(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    bad = m.message(m.msh(facility="ELSEWHERE"), m.orc(), m.obr())

    outcome = handle(bad)

    assert (outcome.code, outcome.error) == (AckCode.REJECT, ErrorCode.UNKNOWN_KEY)


def test_a_resent_message_is_acknowledged_again_and_applied_once(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    first = handle(m.orm())
    after_first = stored(db)

    again = handle(m.orm())

    assert msa(first) == msa(again) == ("AA", "MSG00001")
    assert again.resent
    assert stored(db) == after_first == Stored(orders=1, messages=1, audit=1)


def test_a_resend_is_not_applied_over_a_later_change(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    handle(m.orm("NW", control_id="1"), m.orm("CA", control_id="2"))

    handle(m.orm("NW", control_id="1"))

    assert the_order(db).status == OrderStatus.CANCELLED


def test_the_same_control_id_from_another_facility_is_another_message(
    handle: Handle, db: sessionmaker[Session], hl7_site: int
) -> None:
    with db.begin() as session:
        session.add(Hl7Sender(facility="RXA_CRIS2", site_id=hl7_site))

    handle(m.orm(accession="A1"), m.orm(accession="A2", facility="RXA_CRIS2"))

    assert stored(db).messages == 2
    assert stored(db).orders == 2


def test_concurrent_copies_of_one_message_are_applied_once(
    settings: Settings, hl7_site: int, db: sessionmaker[Session]
) -> None:
    copies = 4

    async def race(context: Hl7Context) -> list[Outcome]:
        return list(
            await asyncio.gather(
                *(handle_message(context, m.orm(), peer="127.0.0.1") for _ in range(copies))
            )
        )

    outcomes = run_in_context(settings, race, connections=copies)

    assert [o.code for o in outcomes] == [AckCode.ACCEPT] * copies
    assert sum(o.resent for o in outcomes) == copies - 1
    assert stored(db) == Stored(orders=1, messages=1, audit=1)


def test_a_database_that_cannot_be_reached_is_an_ae_to_resend(
    settings: Settings, hl7_site: int
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )

    outcome = run_in_context(
        unreachable, lambda context: handle_message(context, m.orm(), peer="127.0.0.1")
    )

    assert msa(outcome) == ("AE", "MSG00001")
    assert outcome.error is ErrorCode.APPLICATION_INTERNAL


def _study(db: sessionmaker[Session], site_id: int, accession: str) -> str:
    with db.begin() as session:
        site = session.get(Site, site_id)
        assert site is not None
        patient = add_patient(session, site, nhs_number=m.NHS_NUMBER)
        study = add_study(
            session,
            patient,
            accession_number=accession,
            priority=Priority.ROUTINE,
            received_at=ARRIVED,
        )
        return study.study_uid


def _load(db: sessionmaker[Session], uid: str) -> Study:
    with db() as session:
        return session.scalars(select(Study).where(Study.study_uid == uid)).one()


def test_an_order_for_an_existing_study_sets_its_priority_and_due_time(
    handle: Handle, db: sessionmaker[Session], hl7_site: int, settings: Settings, redis_url: str
) -> None:
    uid = _study(db, hl7_site, "ACC1001")

    assert handle(m.orm(priority="S")).code is AckCode.ACCEPT

    study = _load(db, uid)
    assert study.priority is Priority.STAT
    assert study.due_at == ARRIVED + settings.turnaround_targets["stat"]
    assert study.order_id == the_order(db).id
    # Published after the commit.
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(STREAM_KEY)
    client.close()
    assert [e[1][b"type"] for e in entries] == [b"study.updated"]


def test_a_change_moves_the_due_time_again(
    handle: Handle, db: sessionmaker[Session], hl7_site: int, settings: Settings
) -> None:
    uid = _study(db, hl7_site, "ACC1001")

    handle(m.orm("NW", control_id="1", priority="R"), m.orm("XO", control_id="2", priority="A"))

    study = _load(db, uid)
    assert study.priority is Priority.URGENT
    assert study.due_at == ARRIVED + settings.turnaround_targets["urgent"]
    assert study.due_at - ARRIVED == timedelta(hours=4)


def test_a_cancel_takes_the_study_off_the_worklist_and_releases_its_claim(
    handle: Handle, db: sessionmaker[Session], hl7_site: int
) -> None:
    uid = _study(db, hl7_site, "ACC1001")
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.study_uid == uid)).one()
        user = add_user(session, "rad", Role.RADIOLOGIST, "RXA")
        study.status = StudyStatus.IN_PROGRESS
        session.add(
            Claim(
                study_id=study.id,
                user_id=user.id,
                claimed_at=ARRIVED,
                expires_at=ARRIVED + timedelta(days=1),
            )
        )

    handle(m.orm("NW", control_id="1"), m.orm("CA", control_id="2"))

    assert _load(db, uid).status is StudyStatus.CANCELLED
    assert the_order(db).status == OrderStatus.CANCELLED
    with db() as session:
        assert session.scalars(select(Claim)).all() == []
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {AuditAction.ORDER_CANCELLED, AuditAction.STUDY_CANCELLED} <= actions


def test_a_message_with_two_orders_stores_both_or_neither(
    handle: Handle, db: sessionmaker[Session]
) -> None:
    two = m.message(
        m.msh(), m.pid(), m.orc(), m.obr(accession="A1"), m.orc(), m.obr(accession="A2")
    )
    broken = m.message(
        m.msh(control_id="MSG2"), m.pid(), m.orc(), m.obr(accession="B1"), m.orc("ZZ"), m.obr()
    )

    assert handle(two).orders == 2
    assert handle(broken).code is AckCode.ERROR

    assert stored(db).orders == 2


def test_a_new_order_after_a_cancel_reinstates_the_study(
    handle: Handle, db: sessionmaker[Session], hl7_site: int
) -> None:
    uid = _study(db, hl7_site, "ACC1001")

    handle(m.orm("NW", control_id="1"), m.orm("CA", control_id="2"), m.orm("NW", control_id="3"))

    # Back to receiving: the worker promotes it once it has been quiet (lifecycle).
    assert _load(db, uid).status is StudyStatus.RECEIVING
    assert the_order(db).status == OrderStatus.ACTIVE
    with db() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert AuditAction.STUDY_REINSTATED in actions


def test_a_change_keeps_what_it_does_not_say(handle: Handle, db: sessionmaker[Session]) -> None:
    change = m.message(
        m.msh(control_id="2"),
        m.pid(),
        m.orc("XO", clinician="", organisation=""),
        m.obr(procedure="MHEAD^MR Head^NICIP", clinical_info="", reason="", priority="S"),
    )

    handle(m.orm("NW", control_id="1"), change)

    order = the_order(db)
    assert (order.procedure_code, order.priority) == ("MHEAD", Priority.STAT)
    assert order.referrer_code == "C1234567"
    assert order.indication == "Query lung cancer; Cough for 6 weeks, smoker"
    assert order.last_control == "XO"
    with db() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == [AuditAction.ORDER_RECEIVED, AuditAction.ORDER_CHANGED]
