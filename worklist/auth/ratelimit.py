"""Login throttling in Redis (fixed windows), tolerant of Redis being down.

Two counters: attempts per client address (every try counts) and failures per
username (cleared on success). Unknown usernames are counted like known ones, so
the lockout reveals nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from worklist.config import Settings
from worklist.errors import TooManyAttempts

log = logging.getLogger(__name__)

TOO_MANY_ATTEMPTS = "Too many login attempts; try again later"
_PREFIX = "worklist:login"


def _key(kind: str, value: str) -> str:
    # Hashed so caller-controlled text never shapes the key space.
    return f"{_PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


class LoginRateLimiter:
    """Counts login attempts and failures; raises TooManyAttempts past the limits."""

    def __init__(self, redis: Redis, *, settings: Settings) -> None:
        self._redis = redis
        self._max_failures = settings.login_max_failures
        self._failure_window = settings.login_failure_window_seconds
        self._max_per_address = settings.login_max_attempts_per_address
        self._address_window = settings.login_address_window_seconds

    async def check_attempt(self, *, username: str, address: str | None) -> None:
        """Count this attempt for its address; raise when the address or username is over limit."""
        try:
            if address:
                count, ttl = await self._increment(_key("addr", address), self._address_window)
                if count > self._max_per_address:
                    raise TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=ttl)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(_key("user", username))
                pipe.ttl(_key("user", username))
                raw, ttl = await pipe.execute()
            if raw is not None and int(raw) >= self._max_failures:
                raise TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=ttl)
        except (RedisError, OSError) as exc:
            self._warn("check", exc)

    async def record_failure(self, *, username: str) -> None:
        """Count a failed login for ``username``."""
        try:
            await self._increment(_key("user", username), self._failure_window)
        except (RedisError, OSError) as exc:
            self._warn("record_failure", exc)

    async def clear_failures(self, *, username: str) -> None:
        """Forget ``username``'s failures after a successful login."""
        try:
            await self._redis.delete(_key("user", username))
        except (RedisError, OSError) as exc:
            self._warn("clear_failures", exc)

    async def _increment(self, key: str, window: int) -> tuple[int, int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, ttl = await pipe.execute()
        return int(count), max(int(ttl), 1)

    @staticmethod
    def _warn(operation: str, exc: BaseException) -> None:
        # Logins must keep working without Redis; the limit is lost, not the service.
        log.warning(
            "login rate limit unavailable, allowing attempt",
            extra={"operation": operation, "error": type(exc).__name__},
        )
