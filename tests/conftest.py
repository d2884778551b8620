"""Shared fixtures: a real PostgreSQL database per xdist worker, real Redis, settings."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from worklist.config import Settings
from worklist.db import (
    make_async_engine,
    make_async_sessionmaker,
    make_engine,
    make_sessionmaker,
    migrate,
    normalise_url,
    run_in_transaction,
)
from worklist.events.bus import make_async_redis
from worklist.models import Base
from worklist.worker import JOBS, Job, run_jobs_once

pytest_plugins = ["tests.receiver"]

ADMIN_URL = os.environ.get(
    "WORKLIST_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("WORKLIST_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SECRET_KEY = secrets.token_urlsafe(48)
T = TypeVar("T")


def _worker_index(worker_id: str) -> int:
    return 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))


def _database_url(name: str) -> str:
    base = normalise_url(ADMIN_URL)
    return base.rsplit("/", 1)[0] + "/" + name


def recreate_database(name: str) -> str:
    """Drop and create database ``name``; return its URL."""
    admin = create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return _database_url(name)


def drop_database(name: str) -> None:
    """Drop database ``name`` if it exists."""
    admin = create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_with_async_sessions(
    database_url: str, scenario: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run ``scenario`` on an event loop of its own with async sessions on ``database_url``.

    The domain is async (docs/architecture.md, "Database access"): tests that call it
    directly, rather than through the API, the CLI or the worker, go through here.
    """

    async def main() -> T:
        engine = make_async_engine(database_url, pool_size=2)
        try:
            return await scenario(make_async_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def run_committed(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` as one committed async transaction, as a worker job or a command does."""
    return run_in_transaction(database_url, work, application_name="worklist-tests")


def run_jobs(
    settings: Settings, jobs: Sequence[Job] = JOBS, *, redis_url: str | None = None
) -> dict[str, int]:
    """One pass of the worker's ``jobs``, publishing to ``redis_url`` when given."""

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
        client = make_async_redis(redis_url) if redis_url else None
        try:
            return await run_jobs_once(sessions, settings, jobs, redis_client=client)
        finally:
            if client is not None:
                await client.aclose()

    return run_with_async_sessions(settings.require_database_url(), scenario)


@pytest.fixture(scope="session")
def database_url(worker_id: str, testrun_uid: str) -> Iterator[str]:
    """A freshly migrated database for this xdist worker of this test run, dropped after."""
    name = f"worklist_test_{testrun_uid[:8]}_{worker_id}"
    url = recreate_database(name)
    migrate(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str:
    """A Redis database number of this worker's own."""
    return f"{REDIS_BASE_URL}/{1 + _worker_index(worker_id)}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The worker's engine."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every table (tests commit for real: gateway and API run their own transactions)."""
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(engine: Engine, redis_url: str) -> sessionmaker[Session]:
    """A clean database (and Redis db) for this test; returns a session factory."""
    truncate_all(engine)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return make_sessionmaker(engine)


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test database, Redis and a temporary data dir."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / "var",
        secret_key=SECRET_KEY,
        gateway_port=0,
        api_port=0,
        # The webhook receivers of the tests listen on loopback; the tests of the target
        # policy turn this off.
        webhook_allow_private=True,
    )
