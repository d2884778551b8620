"""Redis wake-ups for outbox readers: react to a committed message at once, not at the next poll.

A wake-up is only a hint; the rows in PostgreSQL are the truth. While Redis is away the
listener reconnects with backoff and the readers fall back on their poll; on every
(re)connection it wakes them once, since anything published meanwhile was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis
from redis.asyncio import Redis as AsyncRedis

from worklist.outbox import WAKE_CHANNEL, parse_wake_payload

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 2.0
# How often an idle subscription checks ``stopping`` and pings Redis.
_LISTEN_SLICE_SECONDS = 1.0
_HEALTH_CHECK_SECONDS = 15


async def listen_for_wakeups(
    url: str,
    wake: asyncio.Event,
    stopping: asyncio.Event,
    interested: Callable[[set[int]], bool] | None = None,
) -> None:
    """Set ``wake`` whenever a message is published on ``WAKE_CHANNEL`` (naming sites that
    ``interested`` accepts, when given), until ``stopping``."""
    failures = 0
    while not stopping.is_set():
        client = AsyncRedis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_keepalive=True,
            health_check_interval=_HEALTH_CHECK_SECONDS,
        )
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(WAKE_CHANNEL)
                log.debug("subscribed to outbox wake-ups")
                if failures:
                    log.info("outbox wake-ups resumed", extra={"after_failures": failures})
                    failures = 0
                wake.set()
                while not stopping.is_set():
                    message = await pubsub.get_message(timeout=_LISTEN_SLICE_SECONDS)
                    if message is None:
                        continue
                    if interested is None or interested(parse_wake_payload(message["data"])):
                        wake.set()
        except (redis.RedisError, OSError) as exc:
            failures += 1
            delay = min(RECONNECT_MIN_SECONDS * 2 ** (failures - 1), RECONNECT_MAX_SECONDS)
            if failures == 1:
                log.warning(
                    "redis unavailable, outbox falls back on polling",
                    extra={"error": exc, "retry_in_s": delay},
                )
            await wait_for_event(stopping, delay)
        finally:
            await client.aclose()


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
