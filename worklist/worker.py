"""The background worker: periodic jobs, each in its own transaction.

A job is an async function ``(session, settings) -> int`` returning how many things it
did; the worker runs them on its own event loop (``run_worker`` is a blocking entry
point). Jobs: promoting quiet studies, claim lease expiry, alert escalation, demand's
daily rollup (``worklist.stats.rollup``). Beside the
jobs, the outbox dispatcher (``worklist.outbox.dispatcher``: webhooks and HL7 results to the
trusts' RIS) runs in its own thread.
Every job must be safe to run concurrently in several worker replicas (set-based
UPDATEs or ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import ColumnElement, func
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.alerts.escalation import escalate_overdue
from worklist.audit import repository as audit
from worklist.claims import repository as claims_repository
from worklist.claims.repository import ExpiredClaim
from worklist.claims.service import RELEASE_REASON_EXPIRED
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.enums import AuditAction
from worklist.events import EventType, WorklistEvent, stage
from worklist.events.bus import make_async_redis, publish_staged
from worklist.metrics import STUDIES_PROMOTED
from worklist.models import Study
from worklist.outbox.dispatcher import run_dispatcher
from worklist.routing import service as routing
from worklist.routing.body_part import fill_body_parts
from worklist.stats.rollup import roll_up as roll_up_demand
from worklist.studies import lifecycle
from worklist.studies.lifecycle import StudyEvent

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
WORKER_ACTOR = "worker"
# Claims ended per run: bounds the transaction; a backlog drains over the next runs.
EXPIRE_BATCH = 500
# The dispatcher abandons in-flight sends within about a second of being told to stop.
DISPATCHER_JOIN_SECONDS = 10.0


async def promote_quiet_studies(
    session: AsyncSession,
    *,
    stable_seconds: float,
    now: datetime | None = None,
    dicom_dir: Path | None = None,
) -> int:
    """Mark ``receiving`` studies ``ready`` once no instance arrived for ``stable_seconds``,
    and route them (``worklist.routing``), with the body part read from ``dicom_dir``."""
    reference: datetime | ColumnElement[datetime] = func.now() if now is None else now
    cutoff = reference - timedelta(seconds=stable_seconds)
    await routing.hold_rules(session)
    result = await session.execute(
        lifecycle.bulk_update(StudyEvent.BECAME_QUIET, Study.last_instance_at < cutoff).returning(
            Study.id, Study.study_uid, Study.site_id
        )
    )
    rows = result.all()
    study_ids = [study_id for study_id, _, _ in rows]
    if dicom_dir is not None:
        await fill_body_parts(session, study_ids, dicom_dir=dicom_dir)
    # Ready events follow, so a client reading the item sees its subspecialty.
    await routing.route_studies(session, study_ids)
    for _, study_uid, site_id in rows:
        stage(session, WorklistEvent(EventType.STUDY_READY, site_id, study_uid))
    promoted = len(rows)
    if promoted:
        STUDIES_PROMOTED.inc(promoted)
    return promoted


async def expire_claims(
    session: AsyncSession, *, now: datetime | None = None
) -> list[ExpiredClaim]:
    """End claims whose lease ran out: their studies go back to the worklist, audited."""
    expired = await claims_repository.expire_due_claims(session, now=now, limit=EXPIRE_BATCH)
    for claim in expired:
        audit.record(
            session,
            actor=WORKER_ACTOR,
            actor_kind=audit.ActorKind.SYSTEM,
            action=AuditAction.CLAIM_EXPIRED,
            study_uid=claim.study_uid,
            site_id=claim.site_id,
            detail={
                "holder": claim.username,
                "expires_at": claim.expires_at.isoformat(),
                "returned_to_worklist": claim.returned_to_worklist,
            },
        )
        stage(
            session,
            WorklistEvent(
                type=EventType.STUDY_RELEASED,
                site_id=claim.site_id,
                study_uid=claim.study_uid,
                data={"reason": RELEASE_REASON_EXPIRED, "username": claim.username},
            ),
        )
    return expired


@dataclass(frozen=True)
class Job:
    """A periodic unit of work."""

    name: str
    run: Callable[[AsyncSession, Settings], Awaitable[int]]


async def _promote_job(session: AsyncSession, settings: Settings) -> int:
    return await promote_quiet_studies(
        session, stable_seconds=settings.study_stable_seconds, dicom_dir=settings.dicom_dir
    )


async def _expire_job(session: AsyncSession, settings: Settings) -> int:
    return len(await expire_claims(session))


JOBS: tuple[Job, ...] = (
    Job("promote_quiet_studies", _promote_job),
    Job("expire_claims", _expire_job),
    Job("escalate_alerts", escalate_overdue),
    Job("roll_up_demand", roll_up_demand),
)


async def run_jobs_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    jobs: Sequence[Job] = JOBS,
    *,
    redis_client: AsyncRedis | None = None,
) -> dict[str, int]:
    """Run every job once, one transaction each; database errors propagate.

    Events a job staged are published to ``redis_client`` after its commit (best effort).
    """
    done: dict[str, int] = {}
    for job in jobs:
        started = time.perf_counter()
        async with sessions() as session:
            async with session.begin():
                count = await job.run(session, settings)
            if redis_client is not None:
                await publish_staged(redis_client, session)
        done[job.name] = count
        if count:
            log.info(
                "job done",
                extra={
                    "job": job.name,
                    "count": count,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
    return done


def _start_dispatcher(settings: Settings, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=run_dispatcher, args=(settings, stop), name="webhook-dispatcher", daemon=True
    )
    thread.start()
    return thread


def _keep_dispatcher_alive(
    thread: threading.Thread, settings: Settings, stop: threading.Event
) -> threading.Thread:
    # Alerts must keep flowing: a dispatcher that died on a bug is started again.
    if thread.is_alive() or stop.is_set():
        return thread
    log.error("webhook dispatcher exited unexpectedly, restarting it")
    return _start_dispatcher(settings, stop)


def run_worker(
    settings: Settings,
    stop: threading.Event,
    *,
    jobs: Sequence[Job] = JOBS,
    dispatch: bool = True,
) -> None:
    """Run the jobs every ``worker_interval_seconds`` until ``stop`` is set (blocking).

    With ``dispatch`` the webhook dispatcher runs beside them in its own thread and is
    stopped and joined with the worker. A database outage is logged and retried with
    exponential backoff; the worker never exits because PostgreSQL went away for a while.
    """
    asyncio.run(_work(settings, stop, jobs=jobs, dispatch=dispatch))


async def _pause(stop: threading.Event, seconds: float) -> None:
    # The loop runs nothing else meanwhile; a thread lets ``stop`` end the wait at once.
    await asyncio.to_thread(stop.wait, seconds)


async def _work(
    settings: Settings, stop: threading.Event, *, jobs: Sequence[Job], dispatch: bool
) -> None:
    engine = make_async_engine(
        settings.require_database_url(), pool_size=1, application_name="worklist-worker"
    )
    sessions = make_async_sessionmaker(engine)
    redis_client = make_async_redis(settings.redis_url) if settings.redis_url else None
    interval = settings.worker_interval_seconds
    failures = 0
    # Its own event, so the dispatcher stops however this loop ends.
    dispatcher_stop = threading.Event()
    dispatcher = _start_dispatcher(settings, dispatcher_stop) if dispatch else None
    log.info(
        "worker started",
        extra={
            "interval_s": interval,
            "jobs": ",".join(j.name for j in jobs),
            "webhooks": dispatch,
        },
    )
    try:
        while not stop.is_set():
            if dispatcher is not None:
                dispatcher = _keep_dispatcher_alive(dispatcher, settings, dispatcher_stop)
            try:
                await run_jobs_once(sessions, settings, jobs, redis_client=redis_client)
            except Exception as exc:
                failures += 1
                delay = min(interval * 2**failures, MAX_BACKOFF_SECONDS)
                extra = {"failures": failures, "retry_in_s": round(delay, 1)}
                if isinstance(exc, SQLAlchemyError):
                    cause = exc.orig if isinstance(exc, DBAPIError) else exc
                    first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                    log.warning(
                        "database unavailable, backing off", extra={**extra, "error": first_line}
                    )
                else:
                    log.exception("job failed, backing off", extra=extra)
                await _pause(stop, delay)
                continue
            if failures:
                log.info("database reachable again", extra={"after_failures": failures})
                failures = 0
            await _pause(stop, interval)
    finally:
        dispatcher_stop.set()
        if dispatcher is not None:
            await asyncio.to_thread(dispatcher.join, DISPATCHER_JOIN_SECONDS)
            if dispatcher.is_alive():
                log.warning("webhook dispatcher did not stop in time")
        if redis_client is not None:
            await redis_client.aclose()
        await engine.dispose()
        log.info("worker stopped")
