"""``/healthz`` (alive), ``/readyz`` (database and Redis reachable), ``/metrics`` (Prometheus).

``/metrics`` tells backlogs per trust and delivery failures: with ``WORKLIST_METRICS_TOKEN``
set it needs ``Authorization: Bearer <token>``; without one only loopback clients get it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.api.deps import RedisDep, SessionMakerDep, SettingsDep
from worklist.errors import AuthenticationFailed, Forbidden
from worklist.metrics import render_process_metrics
from worklist.ops import repository
from worklist.ops.collectors import BacklogCollector, DeliveryCollector

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"
FAILED = "failed"

METRICS_TOKEN_REQUIRED = "the metrics need the token (Authorization: Bearer <token>)"
METRICS_LOOPBACK_ONLY = (
    "the metrics are served to loopback clients only (set WORKLIST_METRICS_TOKEN to scrape them "
    "from elsewhere)"
)

router = APIRouter(tags=["operations"])


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (also IPv4-mapped); a name or no address is not."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def require_metrics_access(request: Request, settings: SettingsDep) -> None:
    """The scraper holds the metrics token, or (without one configured) calls from loopback."""
    token = settings.metrics_token
    if token:
        scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode(), token.encode()
        ):
            raise AuthenticationFailed(METRICS_TOKEN_REQUIRED)
        return
    if not is_loopback(request.client.host if request.client else None):
        raise Forbidden(METRICS_LOOPBACK_ONLY)


async def _check(name: str, probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "not ready"; the log says which
        log.warning("readiness check failed", extra={"check": name, "error": exc})
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


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_access)],
    responses={
        401: {"description": "WORKLIST_METRICS_TOKEN is set and the bearer token is not it"},
        403: {"description": "No token is configured and the caller is not on loopback"},
    },
)
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
        log.warning("database metrics unavailable", extra={"error": exc})
    else:
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
