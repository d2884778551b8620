"""The one keyset cursor codec: an opaque token for "the position after this row".

A cursor is the URL-safe base64 (unpadded) of a JSON array of the sort key's parts.
Decoding checks each part against the kind the caller expects, so a cursor that is
not one of ours (or is of another list) is an InvalidInput, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from worklist.errors import InvalidInput

INVALID_CURSOR = "invalid cursor: pass the next_cursor of a previous page unchanged"
# The kinds a key part may have; enums travel as their values.
CursorPart = datetime | int | str | uuid.UUID | enum.Enum
MAX_CURSOR_CHARS = 1024


def encode_cursor(*parts: CursorPart) -> str:
    """An opaque cursor for the position after the row whose sort key is ``parts``."""
    payload = [_encode_part(part) for part in parts]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type[Any]]) -> tuple[Any, ...]:
    """The key parts a cursor stands for, each of the kind given; InvalidInput otherwise."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput(INVALID_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, list) or len(payload) != len(kinds):
            raise ValueError("wrong shape")
        return tuple(_decode_part(value, kind) for value, kind in zip(payload, kinds, strict=True))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(INVALID_CURSOR) from exc


def _encode_part(part: CursorPart) -> str | int:
    if isinstance(part, datetime):
        return part.isoformat()
    if isinstance(part, enum.Enum):
        return str(part.value)
    if isinstance(part, uuid.UUID):
        return str(part)
    return part


def _decode_part(value: object, kind: type[Any]) -> Any:
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError("not a timestamp")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("timestamp without zone")
        return moment
    if kind is int:
        if type(value) is not int:
            raise TypeError("not an integer")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise TypeError("not a string")
        return value
    if kind is uuid.UUID:
        return uuid.UUID(str(value))
    if issubclass(kind, enum.Enum):
        return kind(value)
    raise TypeError(f"unsupported cursor part {kind!r}")
