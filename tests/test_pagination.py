"""The keyset cursor codec every list shares."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from worklist.enums import Priority
from worklist.errors import InvalidInput
from worklist.pagination import decode_cursor, encode_cursor

KINDS = (datetime, Priority, int, uuid.UUID, str)
ALERT = uuid.UUID("6f1c1e0e-8d4b-4c59-9d8a-2f0e3b7a9c11")


def test_a_cursor_decodes_to_the_parts_it_was_made_of() -> None:
    parts = (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), Priority.STAT, 7, uuid.uuid4(), "x")

    assert decode_cursor(encode_cursor(*parts), KINDS) == parts


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b"[1]").decode(),
        encode_cursor(datetime(2026, 1, 1), Priority.STAT, 1, ALERT, "x"),  # naive
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "soon", 1, ALERT, "x"),
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), Priority.STAT, "1", ALERT, "x"),
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), Priority.STAT, 1, "nope", "x"),
        "A" * 5000,
    ],
    ids=["not-base64", "object", "short", "naive", "enum", "int", "uuid", "huge"],
)
def test_a_cursor_that_is_not_ours_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="invalid cursor"):
        decode_cursor(cursor, KINDS)
