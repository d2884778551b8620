"""Professional registration numbers: accepted forms, canonical storage, FHIR identifiers."""

from __future__ import annotations

import pytest

from worklist.errors import InvalidInput
from worklist.users.registration import (
    GMC_NUMBER_SYSTEM,
    HCPC_NUMBER_SYSTEM,
    RegistrationId,
    normalise_registration,
    registration_identifier,
)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("GMC1234567", "GMC1234567"),
        ("gmc 123 4567", "GMC1234567"),
        ("1234567", "GMC1234567"),
        ("C1234567", "GMC1234567"),
        ("RA12345", "RA12345"),
        ("hcpc ra-123456", "RA123456"),
    ],
)
def test_gmc_and_hcpc_numbers_are_stored_in_one_canonical_form(given: str, stored: str) -> None:
    assert normalise_registration(given) == stored


@pytest.mark.parametrize("given", ["GMC123456", "GMC12345678", "12345", "R12345", "GMC12345A", ""])
def test_anything_else_is_refused_with_the_accepted_forms(given: str) -> None:
    with pytest.raises(InvalidInput, match="GMC number"):
        normalise_registration(given)


def test_stored_numbers_map_to_the_uk_core_identifier_systems() -> None:
    assert registration_identifier("GMC1234567") == RegistrationId(GMC_NUMBER_SYSTEM, "1234567")
    assert registration_identifier("RA12345") == RegistrationId(HCPC_NUMBER_SYSTEM, "RA12345")
