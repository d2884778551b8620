"""ACK messages (original acknowledgement mode): MSH, MSA and, for AE/AR, ERR.

An ACK echoes only header fields (applications, facilities, processing id, version and
the message control id in MSA-2), in the sender's own encoding characters, and says why
in our own words: it never carries a value from the message body. ERR follows the
sender's version: ERR-1 (ELD: segment^sequence^field^code&text&HL70357) up to v2.4,
ERR-2 (location), ERR-3 (code^text^HL70357), ERR-4 severity and ERR-8 text from v2.5.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from worklist.hl7.errors import AckCode, ErrorCode, Hl7Rejection, Location
from worklist.hl7.fields import DEFAULT_ENCODING_CHARACTERS, Header

OUR_APPLICATION = "WORKLIST"
DEFAULT_VERSION = "2.5.1"
ERROR_TABLE = "HL70357"
SEVERITY_ERROR = "E"
_ELD_VERSIONS = frozenset({"2.3", "2.3.1", "2.4"})
# MSA-3 is an ST of 80 characters up to v2.5.1.
_MAX_TEXT = 80


def build_ack(
    header: Header | None,
    code: AckCode,
    *,
    rejection: Hl7Rejection | None = None,
    now: datetime | None = None,
) -> str:
    """The ACK for a message with ``header`` (None: it had no readable MSH)."""
    fs = header.field_separator if header else "|"
    enc = header.encoding_characters if header else DEFAULT_ENCODING_CHARACTERS
    component, subcomponent = enc[0], enc[3]
    version = header.version if header and header.version else DEFAULT_VERSION
    event = header.trigger_event if header else ""
    kind = "ACK"
    if event:
        kind = f"ACK{component}{event}" + ("" if version == "2.3" else f"{component}ACK")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = [
        "MSH",
        enc,
        (header.receiving_application if header else "") or OUR_APPLICATION,
        header.receiving_facility if header else "",
        header.sending_application if header else "",
        header.sending_facility if header else "",
        stamp,
        "",
        kind,
        uuid.uuid4().hex[:20],
        (header.processing_id if header else "") or "P",
        version,
    ]
    text = _escape(rejection.text[:_MAX_TEXT], fs, enc) if rejection else ""
    msa = ["MSA", code.value, header.control_id if header else "", text]
    segments = [fs.join(msh), fs.join(msa).rstrip(fs)]
    if rejection is not None:
        segments.append(_err(rejection, version, fs, component, subcomponent, text))
    return "\r".join(segments) + "\r"


def _err(
    rejection: Hl7Rejection, version: str, fs: str, component: str, sub: str, text: str
) -> str:
    where = rejection.location or Location("MSH")
    position = [where.segment, str(where.sequence), str(where.field or "")]
    code = rejection.code
    if version in _ELD_VERSIONS:
        coded = sub.join((str(code.value), code.label, ERROR_TABLE))
        return fs.join(["ERR", component.join([*position, coded])])
    location = component.join(position).rstrip(component)
    coded = component.join((str(code.value), code.label, ERROR_TABLE))
    return fs.join(["ERR", "", location, coded, SEVERITY_ERROR, "", "", "", text])


def _escape(value: str, fs: str, enc: str) -> str:
    esc = enc[2]
    named = {esc: "E", fs: "F", enc[0]: "S", enc[1]: "R", enc[3]: "T"}
    return "".join(f"{esc}{named[c]}{esc}" if c in named else c for c in value)


def internal_error() -> Hl7Rejection:
    """The AE for a failure of ours (database unreachable): the sender should resend."""
    return Hl7Rejection(
        AckCode.ERROR,
        ErrorCode.APPLICATION_INTERNAL,
        "temporarily unable to store the message: resend it",
    )
