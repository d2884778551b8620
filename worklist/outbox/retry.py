"""When to try a failed webhook again: exponential backoff with jitter, ``Retry-After`` honoured.

Alerts must never be dropped, so there is no last attempt: the cap
(``webhook_retry_max_seconds``) bounds the interval, not the number of tries.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A receiver asking for more than a day is treated as asking for a day.
MAX_RETRY_AFTER_SECONDS = 86400.0
# 2**60 times any base already exceeds every sensible cap; avoids float overflow.
_MAX_EXPONENT = 60


def backoff_seconds(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay after the ``attempts``-th failed try: ``min(cap, base * 2**(attempts-1))``, jittered.

    The jitter is uniform in ``[delay/2, delay]`` so receivers recovering from an outage
    are not hit by every sender in lockstep.
    """
    exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
    delay = min(cap, base * 2.0**exponent)
    return (rng or random).uniform(delay / 2, delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait (delta-seconds or HTTP-date), capped.

    None when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_delay(
    attempts: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float:
    """Seconds until the next try: the backoff, but never sooner than ``retry_after``."""
    delay = backoff_seconds(attempts, base=base, cap=cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
