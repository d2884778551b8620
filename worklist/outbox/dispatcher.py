"""The outbox dispatcher: delivers pending outbox deliveries of one channel (runs in the worker).

It keeps up to the channel's ``concurrency`` sends in flight (at most its ``per_site`` to
one trust, so one hung receiver cannot starve the others) and claims more whenever a slot
frees, a Redis wake-up arrives, the earliest retry falls due, or the poll interval
(``worker_interval_seconds``) passes. Claims are leases (``FOR UPDATE SKIP LOCKED``), so
any number of workers share the work; a worker that dies mid-send loses its leases when
they expire and another sends again under the same message id (at-least-once).

The worker runs one dispatcher per channel (``serve``): webhooks (``WebhookChannel``) and
ORU^R01 results to the trusts' RIS (``worklist.results.channel.Hl7Channel``). Leases,
backoff and the record of every attempt are this module's whatever the channel.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from worklist.config import Settings
from worklist.db import normalise_url
from worklist.metrics import DELIVERY_LATENCY
from worklist.outbox import repository
from worklist.outbox.channel import (
    MAX_IN_FLIGHT_PER_SITE,
    WORKER_ACTOR,
    Channel,
    WebhookChannel,
    lease_seconds,
)
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.retry import parse_retry_after, retry_delay
from worklist.outbox.sender import AttemptResult, make_client
from worklist.outbox.targets import TargetPolicy
from worklist.outbox.wakeups import listen_for_wakeups, wait_for_event
from worklist.results.channel import Hl7Channel

__all__ = ["MAX_IN_FLIGHT_PER_SITE", "WORKER_ACTOR", "Dispatcher", "lease_seconds", "serve"]

log = logging.getLogger(__name__)

# How long a stopping dispatcher lets in-flight sends finish before abandoning them.
STOP_GRACE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# Recording an outcome is retried this often (database blips) before the lease is left to expire.
RECORD_TRIES = 4
# When due rows were seen but none could be claimed (locked by a concurrent claim).
_MIN_WAIT_SECONDS = 0.02
_STOP_CHECK_SECONDS = 0.05


def _first_line(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


class Dispatcher:
    """Claims due deliveries of one channel, sends them and records every attempt."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        channel: Channel,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.channel = channel
        self.rng = rng or random.Random()
        # Set by wake-ups, finished sends and stop: "look for work now".
        self.kick = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], ClaimedDelivery] = {}
        self._busy: collections.Counter[int] = collections.Counter()

    @property
    def in_flight(self) -> int:
        """How many sends are under way."""
        return len(self._in_flight)

    def _full_sites(self) -> list[int]:
        return [site for site, n in self._busy.items() if n >= self.channel.per_site]

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries (one short transaction)."""
        async with self.sessions() as session, session.begin():
            return list(await self.channel.claim(session, limit=limit, busy=self._busy))

    async def seconds_until_next_due(self) -> float | None:
        """Seconds until the earliest claimable delivery falls due, or None if there is none."""
        async with self.sessions() as session, session.begin():
            return await self.channel.seconds_until_next_due(session, full_sites=self._full_sites())

    async def deliver(self, claimed: ClaimedDelivery) -> AttemptResult:
        """Send one claimed delivery and record the outcome; returns what the send did."""
        result = await self.channel.send(claimed)
        retry_in = self._retry_in(claimed, result)
        for attempt in range(RECORD_TRIES):
            try:
                await self._record(claimed, result, retry_in)
                break
            except (SQLAlchemyError, OSError) as exc:
                if attempt == RECORD_TRIES - 1:
                    log.error(
                        f"{self.channel.noun} outcome not recorded; "
                        "it will be sent again when its lease ends",
                        extra={"webhook_id": claimed.webhook_id, "error": _first_line(exc)},
                    )
                    break
                await asyncio.sleep(0.2 * 2**attempt)
        self._log_attempt(claimed, result, retry_in)
        return result

    def _retry_in(self, claimed: ClaimedDelivery, result: AttemptResult) -> float | None:
        if result.delivered or result.outcome == repository.OUTCOME_REJECTED:
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
            if result.delivered:
                delivered_at = await repository.mark_delivered(
                    session,
                    delivery_id=claimed.delivery_id,
                    lease_token=claimed.lease_token,
                    attempted_at=result.started_at,
                    status_code=result.status_code,
                )
            elif result.outcome == repository.OUTCOME_REJECTED:
                await repository.mark_rejected(
                    session,
                    delivery_id=claimed.delivery_id,
                    lease_token=claimed.lease_token,
                    attempted_at=result.started_at,
                    status_code=result.status_code,
                    error=result.error,
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
            await self.channel.after_attempt(session, claimed, result)
        if delivered_at is not None:
            latency = (delivered_at - claimed.created_at).total_seconds()
            DELIVERY_LATENCY.labels(self.channel.kind.value).observe(max(latency, 0.0))

    def _log_attempt(
        self, claimed: ClaimedDelivery, result: AttemptResult, retry_in: float | None
    ) -> None:
        # Ids, outcome and timing only: never the message (it carries the report).
        noun = self.channel.noun
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
            log.debug(f"{noun} delivered", extra=extra)
        elif result.outcome == repository.OUTCOME_REJECTED:
            log.warning(
                f"{noun} rejected by the receiver: failed, not retried",
                extra={**extra, "error": result.error},
            )
        elif result.outcome != repository.OUTCOME_GONE:
            log.info(
                f"{noun} attempt failed",
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
            log.exception(
                f"{self.channel.noun} delivery crashed", extra={"webhook_id": claimed.webhook_id}
            )

    def _slot_freed(self, task: asyncio.Task[None]) -> None:
        claimed = self._in_flight.pop(task)
        self._busy[claimed.site_id] -= 1
        if self._busy[claimed.site_id] <= 0:
            del self._busy[claimed.site_id]
        self.kick.set()

    async def dispatch_once(self) -> int:
        """Claim what is due (up to the free slots), deliver it all and wait; how many were sent."""
        claimed = await self.claim(self.channel.concurrency - self.in_flight)
        tasks = [self.start(c) for c in claimed]
        if tasks:
            await asyncio.gather(*tasks)
        return len(tasks)

    async def fill_slots(self) -> float:
        """Claim and start work for the free slots; how long to wait before looking again."""
        poll = self.settings.worker_interval_seconds
        free = self.channel.concurrency - self.in_flight
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
        plural = self.channel.plural
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
                        f"database unavailable, {plural} wait",
                        extra={**extra, "error": _first_line(exc)},
                    )
                else:
                    log.exception(f"{self.channel.noun} dispatcher error, backing off", extra=extra)
                await wait_for_event(stopping, delay)
                continue
            if failures:
                log.info(
                    f"{self.channel.noun} dispatcher reconnected",
                    extra={"after_failures": failures},
                )
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
        noun = self.channel.noun
        try:
            async with asyncio.timeout(2.0), self.sessions() as session, session.begin():
                await repository.release_leases(session, claimed)
        except Exception as exc:  # the leases expire on their own
            log.warning(
                f"abandoned {noun} leases not released",
                extra={"count": len(claimed), "error": _first_line(exc)},
            )
        else:
            log.info(f"{noun} sends abandoned on stop", extra={"count": len(claimed)})


async def _watch_stop(
    stop: threading.Event, stopping: asyncio.Event, kicks: Sequence[asyncio.Event]
) -> None:
    # A thread-safe hand-off without an executor thread that could outlive the loop.
    while not stop.is_set():
        await asyncio.sleep(_STOP_CHECK_SECONDS)
    stopping.set()
    for kick in kicks:
        kick.set()


async def _fan_out(wake: asyncio.Event, kicks: Sequence[asyncio.Event]) -> None:
    # One Redis subscription per worker: a wake-up kicks every channel's dispatcher.
    while True:
        await wake.wait()
        wake.clear()
        for kick in kicks:
            kick.set()


async def serve(settings: Settings, stop: threading.Event) -> None:
    """Run a dispatcher per channel (webhooks, HL7 results) with one engine until ``stop``."""
    policy = TargetPolicy.from_settings(settings)
    client = make_client(concurrency=settings.webhook_concurrency, policy=policy)
    channels: list[Channel] = [WebhookChannel(settings, client), Hl7Channel(settings)]
    connections = sum(min(c.concurrency + 1, 8) for c in channels)
    engine = create_async_engine(
        normalise_url(settings.require_database_url()),
        pool_size=connections,
        max_overflow=sum(c.concurrency + 1 for c in channels),
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": "worklist-dispatcher", "connect_timeout": 5},
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    dispatchers = [Dispatcher(settings, sessions, channel) for channel in channels]
    kicks = [d.kick for d in dispatchers]
    stopping = asyncio.Event()
    helpers = [asyncio.create_task(_watch_stop(stop, stopping, kicks))]
    if settings.redis_url:
        wake = asyncio.Event()
        helpers.append(asyncio.create_task(_fan_out(wake, kicks)))
        helpers.append(asyncio.create_task(listen_for_wakeups(settings.redis_url, wake, stopping)))
    try:
        await asyncio.gather(*(d.run(stopping) for d in dispatchers))
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await client.aclose()
        await engine.dispose()


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    """Deliver webhooks and HL7 results until ``stop`` is set (blocking; own event loop)."""
    log.info(
        "webhook dispatcher started",
        extra={
            "concurrency": settings.webhook_concurrency,
            "timeout_s": settings.webhook_timeout_seconds,
            "ris_timeout_s": settings.ris_timeout_seconds,
            "poll_s": settings.worker_interval_seconds,
            "allow_private": settings.webhook_allow_private,
            "allowed_networks": [str(n) for n in settings.webhook_allowed_networks],
        },
    )
    try:
        asyncio.run(serve(settings, stop))
    finally:
        log.info("webhook dispatcher stopped")
