"""The MLLP listener over real sockets, with the ``hl7`` library's client and its
``mllp_send`` command: what is acknowledged, what is refused, and that nothing is
half-stored whatever arrives."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_study
from tests.hl7 import messages as m
from tests.hl7.conftest import (
    NOTHING,
    RunningListener,
    Stored,
    running_listener,
    set_hosts,
    stored,
)
from tests.hl7.mllp_client import (
    err_code,
    exchange,
    msa,
    pipelined,
    raw,
    read_until_closed,
    reset,
)
from worklist.config import Settings
from worklist.enums import Priority, StudyStatus
from worklist.hl7.mllp import END_BLOCK, START_BLOCK, frame
from worklist.models import Order, Site, Study

ARRIVED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ONE_ORDER = Stored(orders=1, messages=1, audit=1)


def still_serving(listener: RunningListener, db: sessionmaker[Session]) -> None:
    """The listener answers a good message after whatever came before."""
    (ack,) = exchange(listener.port, m.orm(control_id="AFTER", accession="ACC-AFTER"))
    assert msa(ack) == ("AA", "AFTER")
    with db() as session:
        assert session.scalars(select(Order.accession_number)).all() == ["ACC-AFTER"]


def test_an_orm_over_mllp_is_stored_and_acknowledged(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    (ack,) = exchange(listener.port, m.orm())

    assert msa(ack) == ("AA", "MSG00001")
    assert stored(db) == ONE_ORDER


def test_an_omi_over_mllp_is_stored(listener: RunningListener, db: sessionmaker[Session]) -> None:
    (ack,) = exchange(listener.port, m.omi())

    assert msa(ack) == ("AA", "MSG00002")
    with db() as session:
        assert session.scalars(select(Order.accession_number)).one() == "ACC3001"


def test_messages_on_one_connection_are_applied_in_order(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    acks = pipelined(
        listener.port,
        m.orm("NW", control_id="1", priority="R"),
        m.orm("XO", control_id="2", priority="S"),
        m.orm("CA", control_id="3", priority=""),
    )

    assert [msa(a) for a in acks] == [("AA", "1"), ("AA", "2"), ("AA", "3")]
    with db() as session:
        order = session.scalars(select(Order)).one()
    assert (order.status, order.last_control, order.priority) == (
        "cancelled",
        "CA",
        Priority.STAT,
    )


def test_mllp_send_delivers_a_file_of_orders(
    listener: RunningListener, db: sessionmaker[Session], tmp_path: Path
) -> None:
    batch = tmp_path / "orders.hl7"
    batch.write_bytes(
        frame(m.orm(control_id="F1", accession="A1"))
        + frame(m.orm(control_id="F2", accession="A2"))
    )

    result = subprocess.run(
        ["mllp_send", "--port", str(listener.port), "--file", str(batch), "127.0.0.1"],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert b"MSA|AA|F1" in result.stdout
    assert b"MSA|AA|F2" in result.stdout
    assert stored(db) == Stored(orders=2, messages=2, audit=2)


def test_bytes_that_are_not_mllp_close_the_connection_and_store_nothing(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    with raw(listener.port) as sock:
        sock.sendall(m.orm() + END_BLOCK)  # no start block

        assert read_until_closed(sock) == b""

    assert stored(db) == NOTHING
    still_serving(listener, db)


def test_a_message_whose_connection_ends_before_its_end_block_is_not_stored(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    whole = m.orm()
    with raw(listener.port) as sock:
        sock.sendall(START_BLOCK + whole[: len(whole) // 2])
        sock.shutdown(2)

    assert stored(db) == NOTHING
    still_serving(listener, db)


def test_a_connection_dropped_mid_message_stores_nothing(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    sock = raw(listener.port)
    sock.sendall(START_BLOCK + m.orm()[:100])
    reset(sock)

    assert stored(db) == NOTHING
    still_serving(listener, db)


def test_a_stalled_connection_does_not_hold_up_the_others(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    with raw(listener.port) as stalled:
        stalled.sendall(START_BLOCK + m.orm(control_id="STALLED")[:50])

        still_serving(listener, db)


def test_a_framed_message_cut_short_is_an_ae(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    whole = m.orm()
    cut = whole[: whole.index(b"ORC|")]

    (ack,) = exchange(listener.port, cut)

    assert msa(ack) == ("AE", "MSG00001")
    assert err_code(ack) == "100"
    assert stored(db) == NOTHING


@pytest.mark.parametrize(("kind", "code"), [("ADT^A01^ADT_A01", "200"), ("ORM^O02^ORM_O02", "201")])
def test_a_wrong_message_type_is_an_ar(
    listener: RunningListener, db: sessionmaker[Session], kind: str, code: str
) -> None:
    data = m.message(m.msh(kind=kind), m.pid(), m.orc(), m.obr())

    (ack,) = exchange(listener.port, data)

    assert msa(ack) == ("AR", "MSG00001")
    assert err_code(ack) == code
    assert stored(db) == NOTHING


def test_a_missing_pid_is_an_ae(listener: RunningListener, db: sessionmaker[Session]) -> None:
    (ack,) = exchange(listener.port, m.message(m.msh(), m.pv1(), m.orc(), m.obr()))

    assert msa(ack) == ("AE", "MSG00001")
    assert err_code(ack) == "100"
    assert str(ack["ERR.F1.R1.C1"]) == "PID"
    assert stored(db) == NOTHING


def test_an_invalid_nhs_number_is_an_ae(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    ids = f"RXA1234567^^^RXA^MR~{m.INVALID_NHS_NUMBER}^^^NHS^NH"
    data = m.message(m.msh(version="2.5.1"), m.pid(identifiers=ids), m.orc(), m.obr())

    (ack,) = exchange(listener.port, data)

    assert msa(ack) == ("AE", "MSG00001")
    assert err_code(ack) == "102"
    assert str(ack["ERR.F8"]) == "invalid NHS number"
    assert stored(db) == NOTHING


def test_an_unknown_facility_is_an_ar(listener: RunningListener, db: sessionmaker[Session]) -> None:
    (ack,) = exchange(listener.port, m.orm(facility="NOT_REGISTERED"))

    assert msa(ack) == ("AR", "MSG00001")
    assert err_code(ack) == "204"
    assert stored(db) == NOTHING


def test_an_unregistered_address_is_an_ar(
    listener: RunningListener, db: sessionmaker[Session], hl7_site: int
) -> None:
    set_hosts(db, hl7_site, ["192.0.2.10"])

    (ack,) = exchange(listener.port, m.orm())

    assert msa(ack) == ("AR", "MSG00001")
    assert stored(db) == NOTHING


def test_a_duplicate_control_id_is_acknowledged_twice_and_applied_once(
    listener: RunningListener, db: sessionmaker[Session]
) -> None:
    first, second = exchange(listener.port, m.orm(), m.orm())
    (third,) = exchange(listener.port, m.orm())  # resent on a new connection

    assert msa(first) == msa(second) == msa(third) == ("AA", "MSG00001")
    assert stored(db) == ONE_ORDER


def test_a_5_mb_message_is_refused_and_the_connection_reads_on(
    listener: RunningListener, db: sessionmaker[Session], settings: Settings
) -> None:
    padding = "NTE|1||" + "x" * (5 * 1024 * 1024)
    huge = m.message(m.msh(control_id="HUGE"), m.pid(), m.orc(), m.obr(), padding)

    refused, after = exchange(listener.port, huge, m.orm(control_id="NEXT"))

    assert msa(refused) == ("AR", "HUGE")
    assert str(settings.hl7_max_message_bytes) in str(refused["MSA.F3"])
    assert msa(after) == ("AA", "NEXT")
    assert stored(db) == ONE_ORDER


def test_an_order_for_an_existing_study_sets_priority_and_due_time_and_ca_cancels_it(
    listener: RunningListener, db: sessionmaker[Session], hl7_site: int, settings: Settings
) -> None:
    with db.begin() as session:
        site = session.get(Site, hl7_site)
        assert site is not None
        patient = add_patient(session, site, nhs_number=m.NHS_NUMBER)
        uid = add_study(session, patient, accession_number="ACC1001", received_at=ARRIVED).study_uid

    def study() -> Study:
        with db() as session:
            return session.scalars(select(Study).where(Study.study_uid == uid)).one()

    (ack,) = exchange(listener.port, m.orm("NW", control_id="1", priority="A"))
    assert msa(ack)[0] == "AA"
    assert study().priority is Priority.URGENT
    assert study().due_at == ARRIVED + settings.turnaround_targets["urgent"]
    assert study().status is StudyStatus.READY

    (ack,) = exchange(listener.port, m.orm("CA", control_id="2"))
    assert msa(ack)[0] == "AA"
    assert study().status is StudyStatus.CANCELLED


def test_logs_carry_no_message_content(
    listener: RunningListener, caplog: pytest.LogCaptureFixture
) -> None:
    ids = f"RXA1234567^^^RXA^MR~{m.INVALID_NHS_NUMBER}^^^NHS^NH"
    bad = m.message(m.msh(control_id="BAD"), m.pid(identifiers=ids), m.orc(), m.obr())
    with caplog.at_level(logging.DEBUG):
        exchange(listener.port, m.orm(), bad, m.orm(facility="STRANGER", control_id="X"))
        with raw(listener.port) as sock:
            sock.sendall(m.orm())
            read_until_closed(sock)

    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("worklist")
    )
    assert "hl7 message refused" in logged
    for value in ("RXA1234567", m.NHS_NUMBER, m.INVALID_NHS_NUMBER, "SMITH", "ACC1001", "Cough"):
        assert value not in logged


@pytest.fixture
def impatient_listener(settings: Settings, hl7_site: int) -> Iterator[RunningListener]:
    """The listener with a short limit on finishing a message begun."""
    with running_listener(settings.model_copy(update={"hl7_message_timeout_seconds": 0.3})) as it:
        yield it


def test_a_message_begun_and_not_finished_in_time_is_dropped_with_its_connection(
    impatient_listener: RunningListener, db: sessionmaker[Session]
) -> None:
    with raw(impatient_listener.port) as stalled:
        stalled.settimeout(30)
        stalled.sendall(START_BLOCK + m.orm(control_id="STALLED")[:50])

        assert read_until_closed(stalled) == b""  # closed by the listener, nothing answered

    assert stored(db) == NOTHING
    still_serving(impatient_listener, db)


def test_a_connection_idle_between_messages_is_kept(
    impatient_listener: RunningListener, db: sessionmaker[Session]
) -> None:
    with raw(impatient_listener.port) as sock:
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):  # nothing to read, and not closed either
            sock.recv(1)
        sock.settimeout(30)
        sock.sendall(frame(m.orm(control_id="LATER", accession="ACC-LATER")))
        reply = sock.recv(65536)

    assert b"MSA|AA|LATER" in reply
