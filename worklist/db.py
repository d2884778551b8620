"""Engines and sessions. Built by factories at start-up, never at import.

The domain is async (``AsyncSession``); synchronous engines serve only the edges that
run in threads of their own (the gateway, reindexing) and the tests' fixtures.
``run_in_transaction`` is how a synchronous entry point (the CLI, the demo seeding)
runs one async unit of work.

Engines hide statement parameters from their errors: the values are search terms and
patient demographics, and an error's message ends up in logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent
R = TypeVar("R")


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "worklist") -> Engine:
    """A synchronous engine (the gateway's threads, reindexing)."""
    return create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"application_name": application_name},
    )


def make_async_engine(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 1.0,
    application_name: str = "worklist-api",
) -> AsyncEngine:
    """An asyncio engine (API, worker, CLI).

    No pre-ping: it costs every request a round trip. A connection the database dropped
    fails its request once (answered 503, ``worklist.api.errors``), and SQLAlchemy then
    discards every pooled connection older than the failure. A request waits at most
    ``pool_timeout`` seconds for a connection: past capacity it is shed, not queued.
    No overflow: an overflow connection is closed when returned, so under load every
    request past ``pool_size`` paid a PostgreSQL backend's start and exit (measured: 10 s
    of database CPU in a 15 s saturation run, docs/performance.md); the pool keeps
    exactly ``pool_size`` connections open instead.
    """
    return create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        hide_parameters=True,
        connect_args={
            "application_name": application_name,
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


async def driver_of(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under SQLAlchemy's ``connection``: for the few hot
    statements sent past SQLAlchemy (pipelined). Errors from it go through
    ``driver_errors``, so callers see SQLAlchemy's, with parameters hidden."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


async def driver_connection(session: AsyncSession) -> psycopg.AsyncConnection[Any]:
    """``driver_of`` the connection of ``session``, in its transaction."""
    return await driver_of(await session.connection())


# A statement as psycopg takes it, and the values of the constants it binds.
DriverSql = tuple[str, dict[str, Any]]


def driver_sql(statement: Any) -> DriverSql:
    """``statement`` as psycopg takes it (named ``%(...)s`` placeholders) and the values
    of the literals it binds: compiled once, at import, for ``driver_connection``."""
    # Expanding literals (enum values of IN lists) rendered in: a shape fixes them.
    compiled = statement.compile(
        dialect=postgresql_psycopg.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"render_postcompile": True},
    )
    literals = {name: value for name, value in compiled.params.items() if value is not None}
    return str(compiled), literals


K = TypeVar("K", bound=Hashable)


class StatementCache(Generic[K]):
    """Statements assembled once per *shape* (``K``: which filters are given, who sees
    what; never a value), as psycopg takes them (``driver_sql``). A few hundred shapes at
    most; past ``size`` the cache starts afresh rather than grow."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._statements: dict[K, DriverSql] = {}

    def get(self, shape: K, assemble: Callable[[], DriverSql]) -> DriverSql:
        """The statement of ``shape``, from ``assemble()`` the first time."""
        statement = self._statements.get(shape)
        if statement is None:
            statement = assemble()
            if len(self._statements) >= self._size:
                self._statements.clear()
            self._statements[shape] = statement
        return statement

    def __iter__(self) -> Iterator[DriverSql]:
        """The statements held (for benchmarks that run one as the API sends it)."""
        return iter(list(self._statements.values()))


@asynccontextmanager
async def driver_errors(statement: str) -> AsyncIterator[None]:
    """Raise psycopg's errors in the block as SQLAlchemy's (``IntegrityError``,
    ``OperationalError``...), as if the engine had run ``statement``, parameters hidden."""
    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, hide_parameters=True
        ) from exc


def run_in_transaction(
    url: str, work: Callable[[AsyncSession], Awaitable[R]], *, application_name: str
) -> R:
    """Run ``work`` as one transaction on a short-lived engine (commit unless it raises).

    For synchronous entry points outside any event loop: it runs its own (``asyncio.run``).
    """

    async def main() -> R:
        engine = make_async_engine(url, pool_size=1, application_name=application_name)
        try:
            async with make_async_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


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
