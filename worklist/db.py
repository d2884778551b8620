"""Engines and sessions. Built by factories at start-up, never at import.

Engines hide statement parameters from their errors: the values are search terms and
patient demographics, and an error's message ends up in logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "worklist") -> Engine:
    """A synchronous engine (gateway, worker, CLI)."""
    return create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": application_name},
    )


def make_async_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 1.0) -> AsyncEngine:
    """An asyncio engine (API).

    No pre-ping: it costs every request a round trip. A connection the database dropped
    fails its request once (answered 503, ``worklist.api.errors``), and SQLAlchemy then
    discards every pooled connection older than the failure. A request waits at most
    ``pool_timeout`` seconds for a connection: past capacity it is shed, not queued.
    """
    return create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        hide_parameters=True,
        connect_args={
            "application_name": "worklist-api",
            # A request's query reads one page by an index: parallel workers (which a
            # q= search over patients would otherwise start) cost tens of milliseconds
            # of CPU to save a few of latency, and the machine serves many requests.
            "options": "-c max_parallel_workers_per_gather=0",
        },
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def make_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    """Async sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """Alembic configured in code, so an installed package migrates without alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the schema to ``revision``."""
    command.downgrade(alembic_config(url), revision)
