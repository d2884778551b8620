"""Migrations are the only way the schema changes: they round-trip and match the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from tests.conftest import drop_database, recreate_database
from worklist.db import alembic_config, downgrade, migrate
from worklist.models import Base


@pytest.fixture(scope="module")
def scratch_database(testrun_uid: str, worker_id: str) -> Iterator[str]:
    """A database of this module's own, dropped after."""
    name = f"worklist_migr_{testrun_uid[:8]}_{worker_id}"
    yield recreate_database(name)
    drop_database(name)


@pytest.fixture
def scratch_url(scratch_database: str) -> str:
    """The module's database, empty for this test: its schema made anew, which is cheaper
    than a database per test (dropping a database forces a checkpoint of the cluster)."""
    engine = create_engine(scratch_database)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return scratch_database


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(scratch_url: str) -> None:
    migrate(scratch_url)
    assert {"studies", "instances", "audit_log", "sites"} <= _tables(scratch_url)
    downgrade(scratch_url, "base")
    assert _tables(scratch_url) <= {"alembic_version"}
    engine = create_engine(scratch_url)
    with engine.connect() as conn:
        leftovers = conn.execute(
            text("SELECT typname FROM pg_type WHERE typname IN ('study_status', 'user_role')")
        ).all()
        functions = conn.execute(
            text("SELECT proname FROM pg_proc WHERE proname = 'index_instances'")
        ).all()
    engine.dispose()
    assert leftovers == []
    assert functions == []
    migrate(scratch_url)
    assert {"studies", "instances", "audit_log", "sites"} <= _tables(scratch_url)


def test_every_revision_downgrades_one_step_at_a_time(scratch_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(scratch_url))
    revisions = [r.revision for r in script.walk_revisions()]
    migrate(scratch_url)
    for _ in revisions:
        downgrade(scratch_url, "-1")
    migrate(scratch_url)


def test_models_match_the_migrations(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []
