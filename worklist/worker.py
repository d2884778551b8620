"""The background worker: periodic jobs, each in its own transaction.

A job is a function ``(session, settings) -> int`` returning how many things it did.
Later jobs (claim lease expiry, outbox delivery, alert escalation) join ``JOBS``.
Every job must be safe to run concurrently in several worker replicas (set-based
UPDATEs or ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from worklist.config import Settings
from worklist.db import make_engine, make_sessionmaker, transaction
from worklist.enums import StudyStatus
from worklist.metrics import STUDIES_PROMOTED
from worklist.models import Study

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


def promote_quiet_studies(
    session: Session, *, stable_seconds: float, now: datetime | None = None
) -> int:
    """Mark ``receiving`` studies ``ready`` once no instance arrived for ``stable_seconds``."""
    reference: datetime | ColumnElement[datetime] = func.now() if now is None else now
    cutoff = reference - timedelta(seconds=stable_seconds)
    result = session.execute(
        update(Study)
        .where(Study.status == StudyStatus.RECEIVING, Study.last_instance_at < cutoff)
        .values(status=StudyStatus.READY)
        .returning(Study.study_uid)
    )
    promoted = len(result.all())
    if promoted:
        STUDIES_PROMOTED.inc(promoted)
    return promoted


@dataclass(frozen=True)
class Job:
    """A periodic unit of work."""

    name: str
    run: Callable[[Session, Settings], int]


def _promote_job(session: Session, settings: Settings) -> int:
    return promote_quiet_studies(session, stable_seconds=settings.study_stable_seconds)


JOBS: tuple[Job, ...] = (Job("promote_quiet_studies", _promote_job),)


def run_jobs_once(
    factory: sessionmaker[Session], settings: Settings, jobs: Sequence[Job] = JOBS
) -> dict[str, int]:
    """Run every job once, one transaction each; database errors propagate."""
    done: dict[str, int] = {}
    for job in jobs:
        started = time.perf_counter()
        with transaction(factory) as session:
            count = job.run(session, settings)
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


def run_worker(settings: Settings, stop: threading.Event, *, jobs: Sequence[Job] = JOBS) -> None:
    """Run the jobs every ``worker_interval_seconds`` until ``stop`` is set.

    A database outage is logged and retried with exponential backoff; the worker
    never exits because PostgreSQL went away for a while.
    """
    engine = make_engine(
        settings.require_database_url(), pool_size=1, application_name="worklist-worker"
    )
    factory = make_sessionmaker(engine)
    interval = settings.worker_interval_seconds
    failures = 0
    log.info(
        "worker started", extra={"interval_s": interval, "jobs": ",".join(j.name for j in jobs)}
    )
    try:
        while not stop.is_set():
            try:
                run_jobs_once(factory, settings, jobs)
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
                stop.wait(delay)
                continue
            if failures:
                log.info("database reachable again", extra={"after_failures": failures})
                failures = 0
            stop.wait(interval)
    finally:
        engine.dispose()
        log.info("worker stopped")
