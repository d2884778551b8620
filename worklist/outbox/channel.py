"""A delivery channel as the dispatcher drives it: which deliveries are due, how one is sent.

The dispatcher (``worklist.outbox.dispatcher``) owns everything a delivery goes through
whatever its channel: leases (``repository.lease_due``), slots, backoff, recording each
attempt and outcome, giving leases back on stop. A channel knows only its due deliveries,
its receiver and its protocol: webhooks here, HL7 results in ``worklist.results.channel``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.config import Settings
from worklist.enums import AuditAction, DeliveryChannel
from worklist.metrics import WEBHOOK_ATTEMPTS
from worklist.outbox import repository
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.sender import AttemptResult, post_webhook

log = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_SITE = 4
WORKER_ACTOR = "worker"


class Channel(Protocol):
    """One way of delivering outbox messages (``deliveries.channel``)."""

    kind: DeliveryChannel
    # How logs name one delivery of it ("webhook") and several ("webhooks").
    noun: str
    plural: str
    # Sends in flight at once in one dispatcher, and at most this many to one trust.
    concurrency: int
    per_site: int
    # How long a claim lasts: longer than any send can take, so a live send never loses it.
    lease_seconds: float

    async def claim(
        self, session: AsyncSession, *, limit: int, busy: Mapping[int, int]
    ) -> Sequence[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries through ``repository.lease_due``."""
        ...

    async def seconds_until_next_due(
        self, session: AsyncSession, *, full_sites: Sequence[int]
    ) -> float | None:
        """Seconds until the earliest claimable delivery falls due, or None."""
        ...

    async def send(self, claimed: ClaimedDelivery) -> AttemptResult:
        """Send one delivery and classify the answer; never raises for I/O."""
        ...

    async def after_attempt(
        self, session: AsyncSession, claimed: ClaimedDelivery, result: AttemptResult
    ) -> None:
        """Anything the outcome implies beyond the delivery row, in its transaction."""
        ...


def lease_seconds(settings: Settings) -> float:
    """A webhook claim: twice the POST timeout plus margin."""
    return 2 * settings.webhook_timeout_seconds + 5


def _host(url: str) -> str:
    # Without userinfo: a URL stored before targets were checked may carry credentials.
    return urlsplit(url).netloc.rpartition("@")[2] or "?"


class WebhookChannel:
    """Standard Webhooks POSTs to each trust's endpoint; a 410 disables the endpoint."""

    kind = DeliveryChannel.WEBHOOK
    noun = "webhook"
    plural = "webhooks"
    per_site = MAX_IN_FLIGHT_PER_SITE

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.client = client
        self.timeout = settings.webhook_timeout_seconds
        self.concurrency = settings.webhook_concurrency
        self.lease_seconds = lease_seconds(settings)

    async def claim(
        self, session: AsyncSession, *, limit: int, busy: Mapping[int, int]
    ) -> Sequence[ClaimedDelivery]:
        """Due webhook deliveries of enabled endpoints."""
        return await repository.claim_due(
            session,
            limit=limit,
            lease_seconds=self.lease_seconds,
            per_site=self.per_site,
            busy=busy,
        )

    async def seconds_until_next_due(
        self, session: AsyncSession, *, full_sites: Sequence[int]
    ) -> float | None:
        """When the next webhook delivery falls due."""
        return await repository.seconds_until_next_due(session, full_sites=full_sites)

    async def send(self, claimed: ClaimedDelivery) -> AttemptResult:
        """POST the signed body."""
        result = await post_webhook(self.client, claimed, timeout=self.timeout)
        WEBHOOK_ATTEMPTS.labels(claimed.site_code, result.outcome).inc()
        return result

    async def after_attempt(
        self, session: AsyncSession, claimed: ClaimedDelivery, result: AttemptResult
    ) -> None:
        """A 410 Gone disables the endpoint (audited) until a manager re-enables it."""
        if result.outcome != repository.OUTCOME_GONE:
            return
        reason = f"410 Gone from {claimed.url} at {result.started_at.isoformat(timespec='seconds')}"
        if not await repository.disable_endpoint(
            session, site_id=claimed.site_id, url=claimed.url, reason=reason
        ):
            return  # already disabled, or the URL changed since: the new one gets a chance
        audit.record(
            session,
            actor=WORKER_ACTOR,
            actor_kind=audit.ActorKind.SYSTEM,
            action=AuditAction.WEBHOOK_DISABLED,
            site_id=claimed.site_id,
            detail={"url": claimed.url, "status_code": 410, "webhook_id": claimed.webhook_id},
        )
        log.warning(
            "webhook endpoint answered 410 Gone: disabled until a manager re-enables it",
            extra={"site": claimed.site_code, "host": _host(claimed.url)},
        )
