"""UID validation: checked before any path is built from a UID."""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
# Components are digits without leading zeros (except a lone 0), separated by single dots.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
# What senders actually emit is looser (leading zeros occur in the wild); paths only need this.
_SAFE_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_valid_uid(value: object) -> bool:
    """True for a UID safe to store and to use as a path component: digits and dots, ≤ 64."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _SAFE_UID.match(value) is not None
    )


def is_strict_uid(value: str) -> bool:
    """True when ``value`` also follows PS3.5 9.1 (no leading zeros in components)."""
    return is_valid_uid(value) and _UID.match(value) is not None
