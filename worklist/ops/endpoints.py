"""``/healthz`` (alive), ``/readyz`` (database and Redis reachable), ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worklist.api.deps import RedisDep, SessionMakerDep
from worklist.metrics import render_process_metrics
from worklist.ops import repository
from worklist.ops.repository import BacklogCount

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


class BacklogCollector(Collector):
    """Backlog gauges from counts taken at scrape time."""

    def __init__(self, counts: list[BacklogCount]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Yield ``worklist_backlog_studies{site,priority,status}``."""
        gauge = GaugeMetricFamily(
            "worklist_backlog_studies",
            "Studies awaiting report, by site, priority and status",
            labels=["site", "priority", "status"],
        )
        for row in self._counts:
            gauge.add_metric([row.site, row.priority.value, row.status.value], row.count)
        yield gauge


@router.get("/metrics", response_class=Response)
async def metrics(sessionmaker: SessionMakerDep) -> Response:
    """Prometheus text: process metrics plus the backlog computed from the database."""
    body = render_process_metrics()
    try:
        async with sessionmaker() as session:
            counts = await asyncio.wait_for(
                repository.backlog_counts(session), CHECK_TIMEOUT_SECONDS
            )
    except Exception as exc:  # metrics must still scrape while the database is down
        log.warning("backlog metrics unavailable", extra={"error": repr(exc)})
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(BacklogCollector(counts))
        body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
