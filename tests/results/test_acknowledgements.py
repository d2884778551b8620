"""Reading the RIS's answer (no network): which acknowledgement means what, and the checker
every ORU goes through refuses what a RIS would."""

from __future__ import annotations

import pytest

from tests.results.validation import assert_valid_oru
from worklist.outbox import repository
from worklist.results.mllp import classify, parse_ack

CONTROL = "0123456789abcdef0123"
MSH = "MSH|^~\\&|RIS|RXA|WORKLIST|IMAGING_NET|20300107093000||ACK^R01^ACK|A1|P|2.5.1"


@pytest.mark.parametrize(
    ("segments", "outcome", "error"),
    [
        ([f"MSA|AA|{CONTROL}"], repository.OUTCOME_DELIVERED, None),
        ([f"MSA|CA|{CONTROL}"], repository.OUTCOME_DELIVERED, None),
        (
            [f"MSA|AE|{CONTROL}|free text that may quote the patient", "ERR|||207^x^HL70357|E"],
            repository.OUTCOME_FAILED,
            "AE: error at the RIS (error 207)",
        ),
        (
            [f"MSA|AR|{CONTROL}", "ERR|PID^1^3^204&Unknown key identifier&HL70357"],
            repository.OUTCOME_REJECTED,
            "AR: rejected by the RIS (error 204)",
        ),
        ([f"MSA|CR|{CONTROL}"], repository.OUTCOME_REJECTED, "CR: rejected by the RIS"),
        (
            ["MSA|AA|SOMETHING-ELSE"],
            repository.OUTCOME_ERROR,
            "acknowledgement of another message (MSA-2)",
        ),
        (
            [f"MSA|XX|{CONTROL}"],
            repository.OUTCOME_ERROR,
            "acknowledgement code not AA, AE or AR (MSA-1)",
        ),
    ],
)
def test_an_acknowledgement_decides_the_outcome(
    segments: list[str], outcome: str, error: str | None
) -> None:
    ack = parse_ack("\r".join([MSH, *segments]) + "\r")

    assert classify(ack, CONTROL) == (outcome, error)


def test_blank_segments_and_newlines_in_an_ack_are_tolerated() -> None:
    ack = parse_ack(f"{MSH}\r\n\r\nMSA|AA|{CONTROL}\n")

    assert (ack.code, ack.control_id) == ("AA", CONTROL)


@pytest.mark.parametrize("text", ["", "garbage", f"{MSH}\rPID|1"])
def test_what_is_not_an_ack_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an HL7 acknowledgement"):
        parse_ack(text)


GOOD = (
    "MSH|^~\\&|WORKLIST|IMAGING_NET||RXA|20300107083000+0000||ORU^R01^ORU_R01|C1|P|2.5.1"
    "|||||GBR|UNICODE UTF-8\r"
    "PID|1||A-1^^^RXA^MR||DOE^JANE||19700101|F\r"
    "ORC|RE||ACC1||CM\r"
    "OBR|1||ACC1|^CT HEAD|||20300107083000+0000|||||||||||ACC1||||20300107093000+0000||RAD|F\r"
    f"OBX|1|FT|18782-3^Radiology Study observation (narrative)^LN||{'Long text. ' * 40}||||||F\r"
)


def test_the_checker_accepts_a_long_report_that_hl7apy_alone_would_refuse() -> None:
    assert_valid_oru(GOOD)


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace("ORC|RE||ACC1||CM\rOBR", "OBR").replace(
            "|F\rOBX", "|F\rORC|RE||ACC1||CM\rOBX"
        ),
        GOOD.replace("Long text. Long", "Long | text. Long", 1),
        GOOD.replace("Long text. Long", "Long \\Q\\ text. Long", 1),
        GOOD.replace("|P|2.5.1", "|P|2.5.1.9"),
        GOOD.replace("20300107083000+0000||ORU", "yesterday||ORU"),
    ],
    ids=["segment order", "raw delimiter", "bad escape", "version", "timestamp"],
)
def test_the_checker_refuses_what_a_ris_would(broken: str) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 (hl7apy raises its own classes)
        assert_valid_oru(broken)
