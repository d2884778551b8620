"""Shared fixtures: a real PostgreSQL database per xdist worker, real Redis, settings."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from worklist.auth.passwords import PasswordCost
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
# Argon2id at its minimum cost: a hash takes microseconds instead of a tenth of a second.
# tests/auth/test_passwords.py checks that production keeps argon2-cffi's defaults.
TEST_PASSWORD_COST = PasswordCost(time_cost=1, memory_kib=8, parallelism=1)
# What every test's settings share: cheap hashes, and a Redis answer that is never given
# up on as late (the API would go on without Redis: logins unthrottled, no wake-ups)
# just because the machine is loaded. A Redis that is down is refused at once anyway.
COMMON_SETTINGS = {
    "password_hash_time_cost": TEST_PASSWORD_COST.time_cost,
    "password_hash_memory_kib": TEST_PASSWORD_COST.memory_kib,
    "password_hash_parallelism": TEST_PASSWORD_COST.parallelism,
    "redis_timeout_seconds": 30.0,
}


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


@dataclass(frozen=True)
class Reset:
    """How to empty this schema: every table (children first), the ones whose triggers refuse
    DELETE (the append-only clinical record), and every sequence."""

    tables: tuple[str, ...]
    guarded: frozenset[str]
    sequences: tuple[str, ...]
    # The rows the migrations seed (SEEDED_TABLES), put back after every reset.
    seeds: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()

    @classmethod
    def inspect(cls, engine: Engine) -> Reset:
        """Read the schema's guarded tables and sequences from the catalogue, and the
        seeded rows of the freshly migrated database."""
        with engine.connect() as conn:
            guarded = conn.scalars(text(_GUARDED_TABLES)).all()
            sequences = conn.scalars(text(_SEQUENCES)).all()
            seeds = tuple(
                (
                    table,
                    tuple(
                        dict(row)
                        for row in conn.execute(text(f'SELECT * FROM "{table}"')).mappings()
                    ),
                )
                for table in SEEDED_TABLES
            )
        tables = tuple(t.name for t in reversed(Base.metadata.sorted_tables))
        return cls(tables, frozenset(guarded), tuple(sequences), seeds)

    def run(self, engine: Engine) -> None:
        """Empty the tables that hold rows and restart every sequence, in one transaction."""
        probe = " UNION ALL ".join(
            f"SELECT '{t}' WHERE EXISTS (SELECT FROM \"{t}\")" for t in self.tables
        )
        restart = ", ".join(f"setval('\"{s}\"', 1, false)" for s in self.sequences)
        with engine.begin() as conn:
            filled = set(conn.scalars(text(probe)))
            # TRUNCATE fires no row triggers but is slow (new files for each table and its
            # indexes, ~2.5 ms apiece): only for the guarded tables that hold rows.
            truncate = sorted(filled & self.guarded)
            if truncate:
                conn.execute(text(f"TRUNCATE {', '.join(truncate)} CASCADE"))
            for table in self.tables:
                if table in filled and table not in self.guarded:
                    conn.execute(text(f'DELETE FROM "{table}"'))
            conn.execute(text(f"SELECT {restart}"))
            for table, rows in self.seeds:
                if rows:
                    conn.execute(Base.metadata.tables[table].insert(), list(rows))


# Tables the migrations fill (the default subspecialty vocabulary): emptied like the rest,
# then given their seeded rows again, so every test starts from a fresh migration's data.
SEEDED_TABLES = ("subspecialties",)

# Tables with a user trigger that fires on DELETE (bit 3 of tgtype).
_GUARDED_TABLES = """
SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgtype & 8 <> 0 AND c.relnamespace = 'public'::regnamespace
"""
_SEQUENCES = "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"


@pytest.fixture(scope="session")
def reset(engine: Engine) -> Reset:
    """How this worker's database is emptied between tests."""
    return Reset.inspect(engine)


@pytest.fixture
def db(engine: Engine, reset: Reset, redis_url: str) -> sessionmaker[Session]:
    """A clean database (and Redis db) for this test; returns a session factory.

    Tests commit for real (the gateway, the API and the worker run their own
    transactions), so the rows the test before left are deleted (tests/README.md).
    """
    reset.run(engine)
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
        **COMMON_SETTINGS,
    )
