"""The FastAPI application, built by a factory so tests and the CLI configure it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from starlette.types import ASGIApp

from worklist.alerts.endpoints import router as alerts_router
from worklist.allocation.endpoints import router as allocation_router
from worklist.api.deps import RESERVED_POOL_TIMEOUT_SECONDS
from worklist.api.docs import install_docs
from worklist.api.errors import install_error_handlers
from worklist.api.guard import InputGuardMiddleware
from worklist.api.limits import BodyLimitMiddleware
from worklist.api.methods import install_method_handler
from worklist.api.middleware import RequestLatencyMiddleware, RequestLogMiddleware
from worklist.api.openapi import install_openapi
from worklist.audit.endpoints import router as audit_router
from worklist.auth.endpoints import router as auth_router
from worklist.config import Settings
from worklist.dashboard.pages import install_dashboard
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.dicomweb.endpoints import router as dicomweb_router
from worklist.doubleread.endpoints import router as doubleread_router
from worklist.events.endpoints import router as events_router
from worklist.opinions.endpoints import router as opinions_router
from worklist.ops.endpoints import router as ops_router
from worklist.orders.endpoints import router as orders_router
from worklist.priors.endpoints import router as priors_router
from worklist.reports.endpoints import router as reports_router
from worklist.routing.endpoints import router as routing_router
from worklist.sites.endpoints import router as sites_router
from worklist.stats.endpoints import router as stats_router
from worklist.stats.extract_endpoints import router as stats_extract_router
from worklist.studies.endpoints import router as studies_router
from worklist.subspecialties.endpoints import router as subspecialties_router
from worklist.users.endpoints import router as users_router


def make_redis(url: str, *, timeout: float) -> Redis:
    """An asyncio Redis client that gives up after ``timeout`` when Redis is unreachable."""
    return Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


class WorklistAPI(FastAPI):
    """FastAPI with the request log around everything, Starlette's error middleware included."""

    def build_middleware_stack(self) -> ASGIApp:
        """The usual stack, wrapped so no exception (or its message) reaches the server's log."""
        return RequestLogMiddleware(super().build_middleware_stack())


def create_app(settings: Settings) -> FastAPI:
    """Build the API; the database engine and Redis client are made when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.signing_key = settings.resolved_secret_key()
        engine = make_async_engine(
            settings.require_database_url(),
            pool_size=settings.api_db_pool_size,
            pool_timeout=settings.api_db_pool_timeout_seconds,
        )
        redis = make_redis(settings.require_redis_url(), timeout=settings.redis_timeout_seconds)
        reserved_engine = make_async_engine(
            settings.require_database_url(),
            pool_size=settings.api_db_reserved_pool_size,
            pool_timeout=RESERVED_POOL_TIMEOUT_SECONDS,
            application_name="worklist-api-reserved",
        )
        app.state.engine = engine
        app.state.sessionmaker = make_async_sessionmaker(engine)
        app.state.reserved_sessionmaker = make_async_sessionmaker(reserved_engine)
        app.state.redis = redis
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()
            await reserved_engine.dispose()

    app = WorklistAPI(
        title="Imaging network reporting worklist",
        description="One shared reporting worklist across the trusts of an imaging network.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by install_docs from the package's own assets, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_docs(app)
    install_dashboard(app)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_method_handler(app)
    install_openapi(app)
    app.add_middleware(RequestLatencyMiddleware)
    app.add_middleware(InputGuardMiddleware)
    if settings.cors_origins:
        # Bearer tokens, not cookies: no credentials mode; viewers read multipart bodies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "If-Match", "Last-Event-ID"],
            expose_headers=["ETag", "Location", "Content-Type"],
            max_age=600,
        )
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(studies_router)
    app.include_router(events_router)
    app.include_router(audit_router)
    app.include_router(reports_router)
    app.include_router(priors_router)
    app.include_router(alerts_router)
    app.include_router(sites_router)
    app.include_router(allocation_router)
    app.include_router(dicomweb_router)
    app.include_router(users_router)
    app.include_router(orders_router)
    app.include_router(subspecialties_router)
    app.include_router(routing_router)
    app.include_router(opinions_router)
    app.include_router(doubleread_router)
    app.include_router(stats_router)
    app.include_router(stats_extract_router)
    return app
