"""The event bus: one Redis stream that committed changes are appended to.

Each entry carries ``type``, ``site_id``, ``study_uid``, ``data`` (JSON) and ``at``
(ISO 8601, UTC); its stream ID is what SSE clients see as the event ``id``. The
stream is capped (approximately) at ``STREAM_MAXLEN`` entries. Publishing is best
effort: the caller's transaction has already committed, so a Redis outage costs
the notification, never the change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.events import WorklistEvent, staged
from worklist.outbox import WAKE_CHANNEL, staged_wakeups, wake_payload

log = logging.getLogger(__name__)

STREAM_KEY = "worklist:events"
STREAM_MAXLEN = 100_000
# Publishers give up quickly when Redis is away: they run right after a commit.
PUBLISH_TIMEOUT_SECONDS = 1.0

EntryFields = Mapping[bytes | str, bytes | str]


@dataclass(frozen=True)
class StreamEvent:
    """An event as read back from the stream."""

    id: str
    type: str
    site_id: int
    study_uid: str | None
    data: dict[str, Any]
    at: str


def make_async_redis(url: str) -> AsyncRedis:
    """An asyncio Redis client for publishers (the worker) that give up quickly."""
    return AsyncRedis.from_url(
        url,
        socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
        socket_timeout=PUBLISH_TIMEOUT_SECONDS,
    )


def make_sync_redis(url: str) -> redis.Redis:
    """A synchronous Redis client for the gateway's publisher thread."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
        socket_timeout=PUBLISH_TIMEOUT_SECONDS,
    )


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def encode(event: WorklistEvent, *, at: datetime) -> dict[FieldT, EncodableT]:
    """The stream entry fields of ``event`` published at ``at``."""
    return {
        "type": event.type,
        "site_id": str(event.site_id),
        "study_uid": event.study_uid or "",
        "data": json.dumps(event.data, default=_json_default, separators=(",", ":")),
        "at": at.astimezone(UTC).isoformat(timespec="milliseconds"),
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode(entry_id: bytes | str, fields: EntryFields) -> StreamEvent | None:
    """The event of one stream entry, or None (logged) when it is not one of ours."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    try:
        data = json.loads(values.get("data") or "{}")
        event = StreamEvent(
            id=_text(entry_id),
            type=values["type"],
            site_id=int(values["site_id"]),
            study_uid=values.get("study_uid") or None,
            data=data if isinstance(data, dict) else {"value": data},
            at=values.get("at", ""),
        )
    except (KeyError, ValueError) as exc:
        log.warning("malformed event entry skipped", extra={"id": _text(entry_id), "error": exc})
        return None
    return event


def _append(pipe: Pipeline | AsyncPipeline, events: Sequence[WorklistEvent]) -> None:
    # The one way entries are written, whichever client sends the pipeline.
    at = datetime.now(UTC)
    for event in events:
        pipe.xadd(STREAM_KEY, encode(event, at=at), maxlen=STREAM_MAXLEN, approximate=True)


async def publish(client: AsyncRedis, events: Sequence[WorklistEvent]) -> list[str]:
    """Append ``events`` to the stream in one round trip; return their stream IDs."""
    if not events:
        return []
    async with client.pipeline(transaction=False) as pipe:
        _append(pipe, events)
        ids = await pipe.execute()
    return [_text(i) for i in ids]


def publish_sync(client: redis.Redis, events: Sequence[WorklistEvent]) -> list[str]:
    """``publish`` for the gateway's publisher thread (no event loop there)."""
    if not events:
        return []
    with client.pipeline(transaction=False) as pipe:
        _append(pipe, events)
        ids = pipe.execute()
    return [_text(i) for i in ids]


def _dropped(events: Sequence[WorklistEvent], exc: Exception) -> None:
    extra = {"events": len(events), "types": ",".join(sorted({e.type for e in events}))}
    if isinstance(exc, redis.RedisError | OSError):
        log.warning("redis unavailable, events not published", extra={**extra, "error": exc})
    else:
        log.exception("events not published", extra=extra)


def _wake_dropped(site_ids: set[int], exc: Exception) -> None:
    log.warning(
        "redis unavailable, outbox wake-up not published (pollers will deliver)",
        extra={"sites": wake_payload(site_ids), "error": exc},
    )


async def publish_staged(client: AsyncRedis, session: AsyncSession) -> None:
    """Publish what was staged on ``session`` (call after it committed); never raises.

    Also wakes the outbox's readers (dispatcher, alert streams) for the sites whose
    messages the transaction added.
    """
    events = staged(session)
    wake = staged_wakeups(session)
    if wake:
        try:
            await client.publish(WAKE_CHANNEL, wake_payload(wake))
        except Exception as exc:  # the rows are committed: the pollers will find them
            _wake_dropped(wake, exc)
    if not events:
        return
    try:
        await publish(client, events)
    except Exception as exc:  # the change is committed: the request must still succeed
        _dropped(events, exc)
