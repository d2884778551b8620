"""ACKs: MSH and MSA echo the header only, ERR says why in the sender's version."""

from __future__ import annotations

from datetime import UTC, datetime

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from tests.hl7 import messages as m
from worklist.hl7.ack import build_ack
from worklist.hl7.errors import AckCode, ErrorCode, Hl7Rejection, Location, error, reject
from worklist.hl7.fields import Header, decode, read_header

NOW = datetime(2026, 1, 5, 10, 15, 30, tzinfo=UTC)
NHS_ERROR = error(ErrorCode.DATA_TYPE, "invalid NHS number", Location("PID", 1, 3))


def header_of(data: bytes) -> Header:
    return read_header(decode(data))


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
@pytest.mark.parametrize("rejection", [None, NHS_ERROR])
def test_acks_are_valid_v2_messages_of_the_senders_version(
    version: str, rejection: Hl7Rejection | None
) -> None:
    code = AckCode.ACCEPT if rejection is None else AckCode.ERROR
    ack = build_ack(header_of(m.orm(version=version)), code, rejection=rejection, now=NOW)

    parsed = parse_message(ack, validation_level=VALIDATION_LEVEL.STRICT, find_groups=False)
    parsed.validate()
    assert parsed.msh.msh_12.value == version


def test_an_aa_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    ack = hl7.parse(build_ack(header_of(m.omi()), AckCode.ACCEPT, now=NOW))

    msh = ack.segment("MSH")
    assert [str(msh(n)) for n in (3, 4, 5, 6)] == ["WORKLIST", "IMAGING_NET", "CRIS", m.FACILITY]
    assert str(msh(7)) == "20260105101530+0000"
    assert str(msh(9)) == "ACK^O23^ACK"
    assert str(msh(10))
    assert str(msh(10)) != "MSG00002"
    assert str(ack["MSA.F1"]) == "AA"
    assert str(ack["MSA.F2"]) == "MSG00002"
    with pytest.raises(KeyError):
        ack.segment("ERR")


def test_a_v2_3_ack_names_no_message_structure() -> None:
    ack = hl7.parse(build_ack(header_of(m.orm(version="2.3")), AckCode.ACCEPT, now=NOW))

    assert str(ack.segment("MSH")(9)) == "ACK^O01"


@pytest.mark.parametrize("version", ["2.3", "2.4"])
def test_up_to_v2_4_err_1_carries_location_and_code(version: str) -> None:
    ack = hl7.parse(
        build_ack(header_of(m.orm(version=version)), AckCode.ERROR, rejection=NHS_ERROR)
    )

    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack["MSA.F3"]) == "invalid NHS number"
    assert str(ack.segment("ERR")(1)) == "PID^1^3^102&Data type error&HL70357"


def test_from_v2_5_err_carries_location_code_severity_and_text() -> None:
    ack = hl7.parse(build_ack(header_of(m.omi()), AckCode.ERROR, rejection=NHS_ERROR))

    err = ack.segment("ERR")
    assert str(err(2)) == "PID^1^3"
    assert str(err(3)) == "102^Data type error^HL70357"
    assert str(err(4)) == "E"
    assert str(err(8)) == "invalid NHS number"


def test_an_ar_without_a_readable_header_still_answers() -> None:
    rejection = reject(ErrorCode.SEGMENT_SEQUENCE, "message does not start with MSH")

    ack = hl7.parse(build_ack(None, AckCode.REJECT, rejection=rejection))

    assert str(ack["MSA.F1"]) == "AR"
    assert str(ack["MSA.F2"]) == ""
    assert str(ack.segment("MSH")(12)) == "2.5.1"
    assert str(ack.segment("ERR")(3)) == "100^Segment sequence error^HL70357"


def test_our_text_is_escaped_in_the_senders_encoding() -> None:
    rejection = error(ErrorCode.DATA_TYPE, "a|b^c&d~e\\f")

    raw = build_ack(header_of(m.orm(version="2.5")), AckCode.ERROR, rejection=rejection)

    assert "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f" in raw
    assert len(hl7.parse(raw).segment("MSA")) == 4


def test_the_acks_own_control_ids_differ() -> None:
    header = header_of(m.orm())

    ids = {str(hl7.parse(build_ack(header, AckCode.ACCEPT)).segment("MSH")(10)) for _ in range(5)}

    assert len(ids) == 5
