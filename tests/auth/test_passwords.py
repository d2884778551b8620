"""Password hashing: production keeps argon2-cffi's cost; the settings can lower it (tests)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.profiles import RFC_9106_LOW_MEMORY
from pydantic import ValidationError

from tests.conftest import TEST_PASSWORD_COST
from worklist.auth.passwords import PasswordCost, hash_password, verify_password
from worklist.config import Settings


def test_production_hashes_with_argon2_cffis_default_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TIME_COST", "MEMORY_KIB", "PARALLELISM"):
        monkeypatch.delenv(f"WORKLIST_PASSWORD_HASH_{name}", raising=False)
    cost = PasswordCost.from_settings(Settings())

    assert cost == PasswordCost()
    stored = extract_parameters(hash_password("correct-horse-battery", cost=cost))
    assert stored == extract_parameters(PasswordHasher().hash("correct-horse-battery"))
    assert (stored.time_cost, stored.memory_cost, stored.parallelism) == (
        RFC_9106_LOW_MEMORY.time_cost,
        RFC_9106_LOW_MEMORY.memory_cost,
        RFC_9106_LOW_MEMORY.parallelism,
    )


def test_a_hash_keeps_its_own_cost_when_the_setting_changes() -> None:
    cheap = hash_password("correct-horse-battery", cost=TEST_PASSWORD_COST)

    assert extract_parameters(cheap).memory_cost == TEST_PASSWORD_COST.memory_kib
    assert verify_password(cheap, "correct-horse-battery", cost=PasswordCost())
    assert not verify_password(cheap, "wrong-horse-battery", cost=PasswordCost())
    assert not verify_password(None, "not-a-real-password", cost=TEST_PASSWORD_COST)


def test_a_memory_cost_below_eight_kib_per_lane_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 8 per lane"):
        Settings(password_hash_memory_kib=8, password_hash_parallelism=2)
