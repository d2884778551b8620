"""The webhook dispatcher: delivers pending outbox deliveries (runs in the worker).

It keeps up to ``webhook_concurrency`` POSTs in flight (at most ``MAX_IN_FLIGHT_PER_SITE``
to one trust, so one hung endpoint cannot starve the others) and claims more whenever a
slot frees, a Redis wake-up arrives, the earliest retry falls due, or the poll interval
(``worker_interval_seconds``) passes. Claims are leases (``FOR UPDATE SKIP LOCKED``), so
any number of workers share the work; a worker that dies mid-send loses its leases when
they expire and another sends again with the same ``webhook-id`` (at-least-once).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from worklist.audit import repository as audit
from worklist.config import Settings
from worklist.db import normalise_url
from worklist.enums import AuditAction, DeliveryChannel
from worklist.metrics import DELIVERY_LATENCY, WEBHOOK_ATTEMPTS
from worklist.outbox import repository
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.retry import parse_retry_after, retry_delay
from worklist.outbox.sender import AttemptResult, make_client, post_webhook
from worklist.outbox.targets import TargetPolicy
from worklist.outbox.wakeups import listen_for_wakeups, wait_for_event

log = logging.getLogger(__name__)

MAX_IN_FLIGHT_PER_SITE = 4
WORKER_ACTOR = "worker"
# How long a stopping dispatcher lets in-flight POSTs finish before abandoning them.
STOP_GRACE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# Recording an outcome is retried this often (database blips) before the lease is left to expire.
RECORD_TRIES = 4
# When due rows were seen but none could be claimed (locked by a concurrent claim).
_MIN_WAIT_SECONDS = 0.02
_STOP_CHECK_SECONDS = 0.05


def lease_seconds(settings: Settings) -> float:
    """How long a claim lasts: twice the POST timeout plus margin, so a live send never loses it."""
    return 2 * settings.webhook_timeout_seconds + 5


def _first_line(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _host(url: str) -> str:
    # Without userinfo: a URL stored before targets were checked may carry credentials.
    return urlsplit(url).netloc.rpartition("@")[2] or "?"


class Dispatcher:
    """Claims due webhook deliveries, POSTs them and records every attempt."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.client = client
        self.rng = rng or random.Random()
        # Set by wake-ups, finished sends and stop: "look for work now".
        self.kick = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], ClaimedDelivery] = {}
        self._busy: collections.Counter[int] = collections.Counter()

    @property
    def in_flight(self) -> int:
        """How many POSTs are under way."""
        return len(self._in_flight)

    def _full_sites(self) -> list[int]:
        return [site for site, n in self._busy.items() if n >= MAX_IN_FLIGHT_PER_SITE]

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries (one short transaction)."""
        async with self.sessions() as session, session.begin():
            return await repository.claim_due(
                session,
                limit=limit,
                lease_seconds=lease_seconds(self.settings),
                per_site=MAX_IN_FLIGHT_PER_SITE,
                busy=self._busy,
            )

    async def seconds_until_next_due(self) -> float | None:
        """Seconds until the earliest claimable delivery falls due, or None if there is none."""
        async with self.sessions() as session, session.begin():
            return await repository.seconds_until_next_due(session, full_sites=self._full_sites())

    async def deliver(self, claimed: ClaimedDelivery) -> AttemptResult:
        """POST one claimed delivery and record the outcome; returns what the POST did."""
        result = await post_webhook(
            self.client, claimed, timeout=self.settings.webhook_timeout_seconds
        )
        WEBHOOK_ATTEMPTS.labels(claimed.site_code, result.outcome).inc()
        retry_in = self._retry_in(claimed, result)
        for attempt in range(RECORD_TRIES):
            try:
                await self._record(claimed, result, retry_in)
                break
            except (SQLAlchemyError, OSError) as exc:
                if attempt == RECORD_TRIES - 1:
                    log.error(
                        "webhook outcome not recorded; it will be sent again when its lease ends",
                        extra={"webhook_id": claimed.webhook_id, "error": _first_line(exc)},
                    )
                    break
                await asyncio.sleep(0.2 * 2**attempt)
        self._log_attempt(claimed, result, retry_in)
        return result

    def _retry_in(self, claimed: ClaimedDelivery, result: AttemptResult) -> float | None:
        if result.delivered:
            return None
        if result.outcome == repository.OUTCOME_GONE:
            return 0.0  # held by the disabled endpoint; goes at once when re-enabled
        return retry_delay(
            claimed.attempts + 1,
            base=self.settings.webhook_retry_base_seconds,
            cap=self.settings.webhook_retry_max_seconds,
            retry_after=parse_retry_after(result.retry_after),
            rng=self.rng,
        )

    async def _record(
        self, claimed: ClaimedDelivery, result: AttemptResult, retry_in: float | None
    ) -> None:
        gone = result.outcome == repository.OUTCOME_GONE
        delivered_at: datetime | None = None
        async with self.sessions() as session, session.begin():
            await repository.add_attempt(
                session,
                delivery_id=claimed.delivery_id,
                attempt=claimed.attempts + 1,
                url=claimed.url,
                started_at=result.started_at,
                duration_ms=result.duration_ms,
                status_code=result.status_code,
                outcome=result.outcome,
                error=result.error,
                retry_in=None if gone else retry_in,
            )
            if result.delivered and result.status_code is not None:
                delivered_at = await repository.mark_delivered(
                    session,
                    delivery_id=claimed.delivery_id,
                    lease_token=claimed.lease_token,
                    attempted_at=result.started_at,
                    status_code=result.status_code,
                )
            else:
                await repository.mark_failed(
                    session,
                    delivery_id=claimed.delivery_id,
                    lease_token=claimed.lease_token,
                    attempted_at=result.started_at,
                    status_code=result.status_code,
                    error=result.error,
                    retry_in=retry_in or 0.0,
                )
            if gone:
                await self._disable_endpoint(session, claimed, result)
        if delivered_at is not None:
            latency = (delivered_at - claimed.created_at).total_seconds()
            DELIVERY_LATENCY.labels(DeliveryChannel.WEBHOOK.value).observe(max(latency, 0.0))

    async def _disable_endpoint(
        self, session: AsyncSession, claimed: ClaimedDelivery, result: AttemptResult
    ) -> None:
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

    def _log_attempt(
        self, claimed: ClaimedDelivery, result: AttemptResult, retry_in: float | None
    ) -> None:
        extra = {
            "site": claimed.site_code,
            "webhook_id": claimed.webhook_id,
            "type": claimed.event_type,
            "attempt": claimed.attempts + 1,
            "outcome": result.outcome,
            "status": result.status_code,
            "ms": result.duration_ms,
        }
        if result.delivered:
            log.debug("webhook delivered", extra=extra)
        elif result.outcome != repository.OUTCOME_GONE:
            log.info(
                "webhook attempt failed",
                extra={**extra, "retry_in_s": round(retry_in or 0.0, 3), "error": result.error},
            )

    def start(self, claimed: ClaimedDelivery) -> asyncio.Task[None]:
        """Deliver ``claimed`` in the background, holding one slot until it is recorded."""
        self._busy[claimed.site_id] += 1
        task = asyncio.create_task(self._deliver_in_slot(claimed))
        self._in_flight[task] = claimed
        task.add_done_callback(self._slot_freed)
        return task

    async def _deliver_in_slot(self, claimed: ClaimedDelivery) -> None:
        try:
            await self.deliver(claimed)
        except Exception:
            log.exception("webhook delivery crashed", extra={"webhook_id": claimed.webhook_id})

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        claimed = self._in_flight.pop(task)
        self._busy[claimed.site_id] -= 1
        if self._busy[claimed.site_id] <= 0:
            del self._busy[claimed.site_id]
        self.kick.set()

    async def dispatch_once(self) -> int:
        """Claim what is due (up to the free slots), deliver it all and wait; how many were sent."""
        claimed = await self.claim(self.settings.webhook_concurrency - self.in_flight)
        tasks = [self.start(c) for c in claimed]
        if tasks:
            await asyncio.gather(*tasks)
        return len(tasks)

    async def fill_slots(self) -> float:
        """Claim and start work for the free slots; how long to wait before looking again."""
        poll = self.settings.worker_interval_seconds
        free = self.settings.webhook_concurrency - self.in_flight
        if free <= 0:
            return poll  # a finishing send kicks us
        claimed = await self.claim(free)
        for item in claimed:
            self.start(item)
        if len(claimed) == free:
            return poll  # every slot busy: a finishing send kicks us
        until = await self.seconds_until_next_due()
        if until is None:
            return poll
        if until <= 0:
            return 0.0 if claimed else _MIN_WAIT_SECONDS
        return min(until, poll)

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set; database outages are logged and waited out."""
        failures = 0
        while not stopping.is_set():
            self.kick.clear()
            try:
                wait = await self.fill_slots()
            except Exception as exc:
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                extra = {"failures": failures, "retry_in_s": delay}
                if isinstance(exc, SQLAlchemyError | OSError):
                    log.warning(
                        "database unavailable, webhooks wait",
                        extra={**extra, "error": _first_line(exc)},
                    )
                else:
                    log.exception("webhook dispatcher error, backing off", extra=extra)
                await wait_for_event(stopping, delay)
                continue
            if failures:
                log.info("webhook dispatcher reconnected", extra={"after_failures": failures})
                failures = 0
            if wait > 0:
                await wait_for_event(self.kick, wait)
        await self._abandon_in_flight()

    async def _abandon_in_flight(self) -> None:
        if not self._in_flight:
            return
        await asyncio.wait(list(self._in_flight), timeout=STOP_GRACE_SECONDS)
        left = dict(self._in_flight)
        if not left:
            return
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await self._release(list(left.values()))

    async def _release(self, claimed: Sequence[ClaimedDelivery]) -> None:
        try:
            async with asyncio.timeout(2.0), self.sessions() as session, session.begin():
                await repository.release_leases(session, claimed)
        except Exception as exc:  # the leases expire on their own
            log.warning(
                "abandoned webhook leases not released",
                extra={"count": len(claimed), "error": _first_line(exc)},
            )
        else:
            log.info("webhook sends abandoned on stop", extra={"count": len(claimed)})


async def _watch_stop(stop: threading.Event, stopping: asyncio.Event, kick: asyncio.Event) -> None:
    # A thread-safe hand-off without an executor thread that could outlive the loop.
    while not stop.is_set():
        await asyncio.sleep(_STOP_CHECK_SECONDS)
    stopping.set()
    kick.set()


async def serve(settings: Settings, stop: threading.Event) -> None:
    """Run a dispatcher with its own engine, HTTP client and wake-up listener until ``stop``."""
    concurrency = settings.webhook_concurrency
    engine = create_async_engine(
        normalise_url(settings.require_database_url()),
        pool_size=min(concurrency + 1, 8),
        max_overflow=concurrency + 1,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": "worklist-dispatcher", "connect_timeout": 5},
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    client = make_client(concurrency=concurrency, policy=TargetPolicy.from_settings(settings))
    dispatcher = Dispatcher(settings, sessions, client)
    stopping = asyncio.Event()
    helpers = [asyncio.create_task(_watch_stop(stop, stopping, dispatcher.kick))]
    if settings.redis_url:
        helpers.append(
            asyncio.create_task(listen_for_wakeups(settings.redis_url, dispatcher.kick, stopping))
        )
    try:
        await dispatcher.run(stopping)
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await client.aclose()
        await engine.dispose()


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    """Deliver webhooks until ``stop`` is set (blocking; runs its own event loop)."""
    log.info(
        "webhook dispatcher started",
        extra={
            "concurrency": settings.webhook_concurrency,
            "timeout_s": settings.webhook_timeout_seconds,
            "poll_s": settings.worker_interval_seconds,
            "allow_private": settings.webhook_allow_private,
            "allowed_networks": [str(n) for n in settings.webhook_allowed_networks],
        },
    )
    try:
        asyncio.run(serve(settings, stop))
    finally:
        log.info("webhook dispatcher stopped")
