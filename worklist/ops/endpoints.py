"""``/healthz`` (alive), ``/readyz`` (database and Redis reachable), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.api.deps import RedisDep, SessionMakerDep
from worklist.metrics import render_process_metrics
from worklist.ops import repository
from worklist.ops.collectors import BacklogCollector, DeliveryCollector

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"
FAILED = "failed"

router = APIRouter(tags=["operations"])


async def _check(name: str, probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; the log says which
        log.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
        return FAILED
    return OK


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependencies are checked)."""
    return {"status": OK}


@router.get("/readyz", responses={503: {"description": "The database or Redis is unreachable"}})
async def readyz(sessionmaker: SessionMakerDep, redis: RedisDep) -> JSONResponse:
    """Ready when a ``SELECT 1`` and a Redis ``PING`` both succeed; 503 says which failed."""

    async def database_probe() -> None:
        async with sessionmaker() as session:
            await repository.ping(session)

    checks = {
        "database": await _check("database", database_probe()),
        "redis": await _check("redis", redis.ping()),
    }
    ready = all(result == OK for result in checks.values())
    return JSONResponse(
        {"status": OK if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _database_collectors(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> list[BacklogCollector | DeliveryCollector]:
    async with sessionmaker() as session:
        # The server gives up too, so a slow scrape leaves no query running behind it.
        await repository.limit_statement_time(session, CHECK_TIMEOUT_SECONDS)
        backlog = await repository.backlog_counts(session)
        deliveries = await repository.delivery_snapshot(session)
    return [BacklogCollector(backlog), DeliveryCollector(deliveries)]


@router.get("/metrics", response_class=Response)
async def metrics(sessionmaker: SessionMakerDep) -> Response:
    """Prometheus text: process metrics plus backlog, alert and delivery numbers from the database.

    The database part is bounded in time; while the database is down (or slow) it is
    left out and the process metrics are still served.
    """
    body = render_process_metrics()
    try:
        collectors = await asyncio.wait_for(
            _database_collectors(sessionmaker), CHECK_TIMEOUT_SECONDS
        )
    except Exception as exc:  # metrics must still scrape while the database is down
        log.warning("database metrics unavailable", extra={"error": repr(exc)})
    else:
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
