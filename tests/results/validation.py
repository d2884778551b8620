"""Checks every ORU^R01 the project sends: v2.5.1 structure (hl7apy, strict), segment order,
and the report text in OBX-5.

hl7apy's strict mode checks OBX-5 against the length of a short text field whatever
OBX-2 declares (it refuses any report over 199 characters) and does not check the order
of segments. So the message is validated with each OBX-5 replaced by a placeholder, the
segment order is checked here against the ORU_R01 structure we send, and OBX-5 is checked
on its own: a value of type FT within FT's length, one field (no raw delimiter), and only
well-formed escape sequences.
"""

from __future__ import annotations

import re
from typing import Any

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

OBX_PLACEHOLDER = "REPORT TEXT"
FT_MAX_LENGTH = 65536
# ORU_R01: MSH, PATIENT_RESULT { PATIENT { PID, [PATIENT_VISIT { PV1 }] },
# ORDER_OBSERVATION { [ORC], OBR, OBSERVATION { OBX }+ } }.
SEGMENT_ORDER = re.compile(r"MSH PID( PV1)? ORC OBR( OBX)+")
_ESCAPE_SEQUENCE = re.compile(r"\\(?:F|S|T|R|E|\.br|X(?:[0-9A-F]{2})+)\\")


def segments(text: str) -> list[list[str]]:
    """The message's segments, each split into fields (text must end each with ``\\r``)."""
    assert text.endswith("\r"), "every segment, the last included, ends with a carriage return"
    return [line.split("|") for line in text[:-1].split("\r")]


def assert_valid_oru(text: str) -> Any:
    """Validate ``text`` as our ORU^R01 v2.5.1; the ``hl7`` library's parse of it."""
    parts = segments(text)
    order = " ".join(fields[0] for fields in parts)
    assert SEGMENT_ORDER.fullmatch(order), f"segment order {order!r}"
    placeholders = []
    for fields in parts:
        if fields[0] == "OBX":
            assert fields[2] in {"FT", "TX"}, fields[2]
            assert_valid_report_value(fields[5])
            fields = [*fields[:5], OBX_PLACEHOLDER, *fields[6:]]
        placeholders.append("|".join(fields))
    message = parse_message(
        "\r".join(placeholders), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
    )
    assert message.validate() is True
    assert message.name == "ORU_R01"
    assert [child.name for child in message.children] == ["MSH", "ORU_R01_PATIENT_RESULT"]
    return hl7.parse(text)


def assert_valid_report_value(value: str) -> None:
    """OBX-5 of type FT: within its length, one field, escapes well-formed."""
    assert value, "an OBX without text"
    assert len(value) <= FT_MAX_LENGTH
    for delimiter in "^~&\r\n":
        assert delimiter not in value, f"raw {delimiter!r} in OBX-5"
    assert "\\" not in _ESCAPE_SEQUENCE.sub("", value), "a malformed escape sequence in OBX-5"


def report_text(message: Any) -> str:
    """The report text as a receiver reads it: OBX-5 values unescaped by the ``hl7`` library,
    ``\\.br\\`` a line break, each OBX continuing on a new line."""
    values = [message.unescape(str(obx[5])) for obx in message.segments("OBX")]
    return "\n".join(values).replace("\r", "\n")


def field(message: Any, name: str) -> str:
    """A whole field (``OBR.F4``) or a part of one (``PID.F3.R2.C1``) as the ``hl7`` library
    reads it (its accessor alone gives the first component of a field)."""
    parts = name.split(".")
    if len(parts) == 2:
        return str(message.segment(parts[0])[int(parts[1].removeprefix("F"))])
    return str(message[name])
