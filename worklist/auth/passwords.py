"""Password hashing with Argon2id, at the cost the settings give (argon2-cffi's by default)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from worklist.config import Settings

_DUMMY_PASSWORD = "not-a-real-password"


@dataclass(frozen=True)
class PasswordCost:
    """Argon2id's cost: passes over memory, memory in KiB, and lanes."""

    # argon2-cffi's defaults (RFC 9106's low-memory profile), as the settings' are.
    time_cost: int = RFC_9106_LOW_MEMORY.time_cost
    memory_kib: int = RFC_9106_LOW_MEMORY.memory_cost
    parallelism: int = RFC_9106_LOW_MEMORY.parallelism

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordCost:
        """The cost ``WORKLIST_PASSWORD_HASH_*`` configure."""
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        )


@cache
def _hasher(cost: PasswordCost) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
    )


@cache
def _dummy_hash(cost: PasswordCost) -> str:
    # Verified against when the username is unknown, so both paths cost the same.
    return _hasher(cost).hash(_DUMMY_PASSWORD)


def hash_password(password: str, *, cost: PasswordCost) -> str:
    """Hash a password for storage."""
    return _hasher(cost).hash(password)


def verify_password(password_hash: str | None, password: str, *, cost: PasswordCost) -> bool:
    """True when ``password`` matches; constant work whether or not the user exists.

    A stored hash carries its own parameters; ``cost`` is that of the stand-in hash an
    unknown username is checked against.
    """
    try:
        checked = password_hash or _dummy_hash(cost)
        return _hasher(cost).verify(checked, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
