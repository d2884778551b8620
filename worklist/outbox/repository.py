"""SQL of the outbox dispatchers: lease due deliveries, record attempts, disable endpoints.

Every channel (webhooks here, HL7 results in ``worklist.results``) selects its own due
deliveries and leases them through ``lease_due``; attempts and outcomes are recorded by
the same statements whatever the channel. Times come from the database clock (``now()``)
so several workers on several hosts agree on what is due. A delivery is only ever changed
by the holder of its current lease.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

# Attempt outcomes as stored in delivery_attempts.outcome.
OUTCOME_DELIVERED = "delivered"
OUTCOME_FAILED = "failed"
OUTCOME_GONE = "gone"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_ERROR = "error"
# The target was refused by the webhook target policy (worklist.outbox.targets).
OUTCOME_REFUSED = "refused"
# The receiver refused the message for good (HL7 AR): the delivery fails, never retried.
OUTCOME_REJECTED = "rejected"

MAX_ERROR_LENGTH = 500
# Rows examined per claim for each slot offered: leaves room to skip sites at their cap.
_SCAN_FACTOR = 4


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this worker holds the lease of, with everything needed to send it.

    ``url`` is where it goes (for HL7, ``mllp://host:port``); ``secrets`` sign webhooks.
    """

    delivery_id: int
    lease_token: uuid.UUID
    attempts: int
    webhook_id: str
    event_type: str
    body: str
    created_at: datetime
    site_id: int
    site_code: str
    url: str
    secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class LeasedRow:
    """A delivery just leased, with its message and its site's delivery targets."""

    delivery_id: int
    lease_token: uuid.UUID
    attempts: int
    webhook_id: str
    event_type: str
    body: str
    created_at: datetime
    study_id: int | None
    site_id: int
    site_code: str
    webhook_url: str | None
    secrets: tuple[str, ...] = field(repr=False)
    ris_host: str | None
    ris_port: int | None


# Due webhook deliveries of enabled endpoints, oldest due first (``lease_due`` takes them).
WEBHOOK_CANDIDATES = text(
    """
SELECT d.id, d.site_id
FROM deliveries d
JOIN sites s ON s.id = d.site_id
WHERE d.status = 'pending'
  AND d.channel = 'webhook'
  AND d.next_attempt_at <= now()
  AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
  AND s.webhook_url IS NOT NULL
  AND s.webhook_disabled_at IS NULL
  AND d.site_id <> ALL(CAST(:full_sites AS integer[]))
ORDER BY d.next_attempt_at, d.id
LIMIT :scan
FOR UPDATE OF d SKIP LOCKED
"""
)

_LEASE = text(
    """
UPDATE deliveries d
SET lease_token = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => :lease)
FROM outbox_messages m, sites s
WHERE d.id = ANY(CAST(:ids AS bigint[])) AND m.id = d.message_id AND s.id = d.site_id
RETURNING d.id, d.lease_token, d.attempts, m.webhook_id, m.type, m.body, m.created_at,
          m.study_id, s.id AS site_id, s.code, s.webhook_url, s.webhook_secret,
          CASE WHEN s.webhook_previous_secret_until > now() THEN s.webhook_previous_secret END
              AS previous_secret,
          s.ris_host, s.ris_port
"""
)


async def lease_due(
    session: AsyncSession,
    candidates: TextClause,
    *,
    limit: int,
    lease_seconds: float,
    per_site: int,
    busy: Mapping[int, int],
) -> list[LeasedRow]:
    """Lease up to ``limit`` of the deliveries ``candidates`` selects (by delivery id).

    ``candidates`` is a channel's ``SELECT id, site_id ... FOR UPDATE OF d SKIP LOCKED``
    of its due deliveries in the order they should go, taking ``:scan`` rows and leaving
    out ``:full_sites``. ``busy`` is how many deliveries this process already has in
    flight per site; no site gets more than ``per_site`` in flight, so one hung receiver
    cannot take every slot. Every channel takes its leases here and only here.
    """
    if limit <= 0:
        return []
    full_sites = [site for site, count in busy.items() if count >= per_site]
    rows = await session.execute(
        candidates, {"scan": limit * _SCAN_FACTOR, "full_sites": full_sites}
    )
    taken: collections.Counter[int] = collections.Counter()
    chosen: list[int] = []
    for delivery_id, site_id in rows:
        if taken[site_id] + busy.get(site_id, 0) >= per_site:
            continue
        taken[site_id] += 1
        chosen.append(delivery_id)
        if len(chosen) == limit:
            break
    if not chosen:
        return []
    leased = [
        LeasedRow(
            delivery_id=row.id,
            lease_token=row.lease_token,
            attempts=row.attempts,
            webhook_id=row.webhook_id,
            event_type=row.type,
            body=row.body,
            created_at=row.created_at,
            study_id=row.study_id,
            site_id=row.site_id,
            site_code=row.code,
            webhook_url=row.webhook_url,
            secrets=tuple(s for s in (row.webhook_secret, row.previous_secret) if s),
            ris_host=row.ris_host,
            ris_port=row.ris_port,
        )
        for row in await session.execute(_LEASE, {"ids": chosen, "lease": lease_seconds})
    ]
    leased.sort(key=lambda row: row.delivery_id)
    return leased


async def claim_due(
    session: AsyncSession,
    *,
    limit: int,
    lease_seconds: float,
    per_site: int,
    busy: Mapping[int, int],
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due webhook deliveries of enabled endpoints (``SKIP LOCKED``)."""
    leased = await lease_due(
        session,
        WEBHOOK_CANDIDATES,
        limit=limit,
        lease_seconds=lease_seconds,
        per_site=per_site,
        busy=busy,
    )
    return [
        ClaimedDelivery(
            delivery_id=row.delivery_id,
            lease_token=row.lease_token,
            attempts=row.attempts,
            webhook_id=row.webhook_id,
            event_type=row.event_type,
            body=row.body,
            created_at=row.created_at,
            site_id=row.site_id,
            site_code=row.site_code,
            url=row.webhook_url or "",
            secrets=row.secrets,
        )
        for row in leased
    ]


# When the earliest unleased webhook delivery of an enabled endpoint falls due.
WEBHOOK_NEXT_DUE = text(
    """
SELECT extract(epoch FROM d.next_attempt_at - now())
FROM deliveries d
JOIN sites s ON s.id = d.site_id
WHERE d.status = 'pending'
  AND d.channel = 'webhook'
  AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())
  AND s.webhook_url IS NOT NULL
  AND s.webhook_disabled_at IS NULL
  AND d.site_id <> ALL(CAST(:full_sites AS integer[]))
ORDER BY d.next_attempt_at
LIMIT 1
"""
)


async def seconds_until_next_due(
    session: AsyncSession,
    *,
    full_sites: Sequence[int],
    statement: TextClause = WEBHOOK_NEXT_DUE,
) -> float | None:
    """Seconds until the earliest unleased delivery falls due (<= 0: due now), or None.

    ``statement`` is the channel's query of it (webhooks by default), given ``:full_sites``.
    """
    value = await session.scalar(statement, {"full_sites": list(full_sites)})
    return None if value is None else float(value)


_ADD_ATTEMPT = text(
    """
INSERT INTO delivery_attempts
    (delivery_id, attempt, url, started_at, duration_ms, status_code, outcome, error, retry_at)
VALUES (:delivery_id, :attempt, :url, :started_at, :duration_ms, :status_code, :outcome, :error,
        CASE WHEN CAST(:retry_in AS double precision) IS NULL THEN NULL
             ELSE now() + make_interval(secs => CAST(:retry_in AS double precision)) END)
"""
)


async def add_attempt(
    session: AsyncSession,
    *,
    delivery_id: int,
    attempt: int,
    url: str,
    started_at: datetime,
    duration_ms: float,
    status_code: int | None,
    outcome: str,
    error: str | None,
    retry_in: float | None,
) -> None:
    """Append one attempt (``retry_at`` = now + ``retry_in`` when another try is planned)."""
    await session.execute(
        _ADD_ATTEMPT,
        {
            "delivery_id": delivery_id,
            "attempt": attempt,
            "url": url,
            "started_at": started_at,
            "duration_ms": duration_ms,
            "status_code": status_code,
            "outcome": outcome,
            "error": truncate_error(error),
            "retry_in": retry_in,
        },
    )


_MARK_DELIVERED = text(
    """
UPDATE deliveries
SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
    last_attempt_at = :attempted_at, last_status_code = :status_code, last_error = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :delivery_id AND lease_token = :lease_token
RETURNING delivered_at
"""
)


async def mark_delivered(
    session: AsyncSession,
    *,
    delivery_id: int,
    lease_token: uuid.UUID,
    attempted_at: datetime,
    status_code: int | None,
) -> datetime | None:
    """Mark a delivery delivered if we still hold its lease; its ``delivered_at``, else None."""
    delivered_at: datetime | None = await session.scalar(
        _MARK_DELIVERED,
        {
            "delivery_id": delivery_id,
            "lease_token": lease_token,
            "attempted_at": attempted_at,
            "status_code": status_code,
        },
    )
    return delivered_at


_MARK_FAILED = text(
    """
UPDATE deliveries
SET attempts = attempts + 1, last_attempt_at = :attempted_at,
    last_status_code = :status_code, last_error = :error,
    next_attempt_at = now() + make_interval(secs => :retry_in),
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :delivery_id AND lease_token = :lease_token
RETURNING id
"""
)


async def mark_failed(
    session: AsyncSession,
    *,
    delivery_id: int,
    lease_token: uuid.UUID,
    attempted_at: datetime,
    status_code: int | None,
    error: str | None,
    retry_in: float,
) -> bool:
    """Schedule the next try in ``retry_in`` seconds if we still hold the lease; True if so."""
    updated = await session.scalar(
        _MARK_FAILED,
        {
            "delivery_id": delivery_id,
            "lease_token": lease_token,
            "attempted_at": attempted_at,
            "status_code": status_code,
            "error": truncate_error(error),
            "retry_in": retry_in,
        },
    )
    return updated is not None


_MARK_REJECTED = text(
    """
UPDATE deliveries
SET status = 'failed', attempts = attempts + 1, last_attempt_at = :attempted_at,
    last_status_code = :status_code, last_error = :error,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :delivery_id AND lease_token = :lease_token
RETURNING id
"""
)


async def mark_rejected(
    session: AsyncSession,
    *,
    delivery_id: int,
    lease_token: uuid.UUID,
    attempted_at: datetime,
    status_code: int | None,
    error: str | None,
) -> bool:
    """Fail a delivery for good (the receiver refused it) if we still hold the lease."""
    updated = await session.scalar(
        _MARK_REJECTED,
        {
            "delivery_id": delivery_id,
            "lease_token": lease_token,
            "attempted_at": attempted_at,
            "status_code": status_code,
            "error": truncate_error(error),
        },
    )
    return updated is not None


_DISABLE_ENDPOINT = text(
    """
UPDATE sites
SET webhook_disabled_at = now(), webhook_disabled_reason = :reason
WHERE id = :site_id AND webhook_url = :url AND webhook_disabled_at IS NULL
RETURNING id
"""
)


async def disable_endpoint(session: AsyncSession, *, site_id: int, url: str, reason: str) -> bool:
    """Disable a site's webhook endpoint if ``url`` is still its URL and it is enabled."""
    updated = await session.scalar(
        _DISABLE_ENDPOINT, {"site_id": site_id, "url": url, "reason": reason}
    )
    return updated is not None


_RELEASE = text(
    """
UPDATE deliveries SET lease_token = NULL, lease_expires_at = NULL
WHERE id = ANY(CAST(:ids AS bigint[])) AND lease_token = ANY(CAST(:tokens AS uuid[]))
"""
)


async def release_leases(session: AsyncSession, claimed: Sequence[ClaimedDelivery]) -> None:
    """Give up the leases of deliveries we abandon (stopping), so others need not wait them out."""
    if not claimed:
        return
    await session.execute(
        _RELEASE,
        {
            "ids": [c.delivery_id for c in claimed],
            "tokens": [c.lease_token for c in claimed],
        },
    )


def truncate_error(error: str | None) -> str | None:
    """An error text short enough to keep in every attempt row."""
    if error is None or len(error) <= MAX_ERROR_LENGTH:
        return error
    return error[: MAX_ERROR_LENGTH - 1] + "…"
