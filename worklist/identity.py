"""Patient identity: NHS numbers (Modulus 11) link a patient's studies across trusts."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s-]")
_WEIGHTS = range(10, 1, -1)


def nhs_check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when no valid number exists."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: str | None) -> str | None:
    """Return the 10-digit NHS number if ``value`` is one (spaces/dashes allowed), else None."""
    if not value:
        return None
    digits = _SEPARATORS.sub("", value.strip())
    if len(digits) != 10 or not digits.isdigit():
        return None
    if nhs_check_digit(digits[:9]) != int(digits[9]):
        return None
    return digits


def make_nhs_number(seed: int) -> str:
    """A valid NHS number derived from ``seed`` (for demo and test data)."""
    n = seed
    while True:
        first_nine = f"{(n % 900_000_000) + 100_000_000:09d}"
        check = nhs_check_digit(first_nine)
        if check is not None:
            return first_nine + str(check)
        n += 1
