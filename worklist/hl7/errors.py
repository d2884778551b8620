"""Why a message is refused: the acknowledgement code (HL7 table 0008) and the error
condition (HL7 table 0357) its ACK carries, with a short text that never quotes the
message."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AckCode(enum.StrEnum):
    """MSA-1, original acknowledgement mode."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class ErrorCode(enum.IntEnum):
    """HL7 table 0357 (message error condition codes)."""

    SEGMENT_SEQUENCE = 100  # segments out of order, or a required one missing
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    APPLICATION_RECORD_LOCKED = 206
    APPLICATION_INTERNAL = 207

    @property
    def label(self) -> str:
        """The code's name as table 0357 spells it (ERR-3.2)."""
        return _LABELS[self]


_LABELS = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.APPLICATION_RECORD_LOCKED: "Application record locked",
    ErrorCode.APPLICATION_INTERNAL: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """Where the error is (ERR-2 / ERR-1 components): segment, its sequence, field."""

    segment: str
    sequence: int = 1
    field: int | None = None


class Hl7Rejection(Exception):
    """The message is not applied; its ACK says ``ack`` with ``code`` and ``text``.

    ``text`` is ours, never a value from the message (ACKs and logs carry no patient
    data).
    """

    def __init__(
        self,
        ack: AckCode,
        code: ErrorCode,
        text: str,
        location: Location | None = None,
    ) -> None:
        super().__init__(text)
        self.ack = ack
        self.code = code
        self.text = text
        self.location = location


def error(code: ErrorCode, text: str, location: Location | None = None) -> Hl7Rejection:
    """An AE: the message was understood but its content cannot be applied."""
    return Hl7Rejection(AckCode.ERROR, code, text, location)


def reject(code: ErrorCode, text: str, location: Location | None = None) -> Hl7Rejection:
    """An AR: the message is not one we take (header, type, version, sender)."""
    return Hl7Rejection(AckCode.REJECT, code, text, location)
