"""Login throttling in Redis (fixed windows), tolerant of Redis being down.

Three counters, so that nobody can lock a user out from somewhere else:

- attempts per client address (every try counts): one address cannot spray guesses;
- failures per (username, address) pair (cleared on success): the ordinary lockout,
  which only ever locks out the address the failures came from;
- failures per username across all addresses: past a much higher limit, guessing from
  addresses the user has not recently logged in from is refused, which bounds a
  distributed attack; addresses where the user logged in successfully lately are
  exempt, so the real user at their own workstation is not locked out by it.

Unknown usernames are counted like known ones, so the lockout reveals nothing about
which accounts exist.
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
SECONDS_PER_DAY = 86400
_PREFIX = "worklist:login"
# No address (a client the server could not identify) is one address of its own.
_NO_ADDRESS = "-"


def _key(kind: str, *parts: str) -> str:
    # Each part hashed on its own, so caller-controlled text never shapes the key space
    # and no username can be made to collide with another (username, address) pair.
    digests = ":".join(hashlib.sha256(part.encode()).hexdigest() for part in parts)
    return f"{_PREFIX}:{kind}:{digests}"


class LoginRateLimiter:
    """Counts login attempts and failures; raises TooManyAttempts past the limits."""

    def __init__(self, redis: Redis, *, settings: Settings) -> None:
        self._redis = redis
        self._max_pair_failures = settings.login_max_failures
        self._pair_window = settings.login_failure_window_seconds
        self._max_per_address = settings.login_max_attempts_per_address
        self._address_window = settings.login_address_window_seconds
        self._max_user_failures = settings.login_max_failures_per_user
        self._user_window = settings.login_user_window_seconds
        self._known_ttl = settings.login_known_address_days * SECONDS_PER_DAY

    async def check_attempt(self, *, username: str, address: str | None) -> None:
        """Count this attempt for its address; raise when any limit is reached."""
        where = address or _NO_ADDRESS
        try:
            if address:
                count, ttl = await self._increment(_key("addr", address), self._address_window)
                if count > self._max_per_address:
                    raise TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=ttl)
            pair, user = _key("pair", username, where), _key("user", username)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(pair)
                pipe.ttl(pair)
                pipe.get(user)
                pipe.ttl(user)
                pipe.exists(_key("known", username, where))
                pair_raw, pair_ttl, user_raw, user_ttl, known = await pipe.execute()
            if pair_raw is not None and int(pair_raw) >= self._max_pair_failures:
                raise TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=max(int(pair_ttl), 1))
            if not known and user_raw is not None and int(user_raw) >= self._max_user_failures:
                raise TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=max(int(user_ttl), 1))
        except (RedisError, OSError) as exc:
            self._warn("check", exc)

    async def record_failure(self, *, username: str, address: str | None) -> None:
        """Count a failed login for ``username`` from ``address``, and for the user overall."""
        where = address or _NO_ADDRESS
        try:
            await self._increment(_key("pair", username, where), self._pair_window)
            await self._increment(_key("user", username), self._user_window)
        except (RedisError, OSError) as exc:
            self._warn("record_failure", exc)

    async def record_success(self, *, username: str, address: str | None) -> None:
        """Forget the pair's failures and remember ``address`` as one the user logs in from.

        The per-user count stays: a real login must not reset a distributed attack's budget.
        """
        where = address or _NO_ADDRESS
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(_key("pair", username, where))
                if address:
                    pipe.set(_key("known", username, where), 1, ex=self._known_ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn("record_success", exc)

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
