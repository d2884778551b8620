"""The lifecycle's SQL files are what the migrations install."""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

from worklist.audit.repository import ActorKind
from worklist.studies.sql import INDEX_INSTANCES_CURRENT, read_sql


def _body(definition: str) -> str:
    """The body of index_instances in a file that may define helper functions too."""
    match = re.search(r"FUNCTION index_instances\(.*?\$fn\$(.*?)\$fn\$", definition, re.DOTALL)
    assert match is not None
    return match.group(1).strip()


def test_the_migrated_index_instances_is_the_current_sql_file(engine: Engine) -> None:
    with engine.connect() as conn:
        installed = conn.execute(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'index_instances'")
        ).scalar_one()

    assert installed.strip() == _body(read_sql(INDEX_INSTANCES_CURRENT))


def test_every_version_is_a_complete_function_definition() -> None:
    for version in (f"index_instances_v{n}" for n in range(1, 5)):
        sql = read_sql(version)
        assert "CREATE OR REPLACE FUNCTION index_instances(batch jsonb, at timestamptz)" in sql
        assert _body(sql).endswith("END")


def test_the_gateways_audit_rows_spell_the_actor_kind_as_the_application_does() -> None:
    sql = read_sql(INDEX_INSTANCES_CURRENT)

    assert "'dicom_node'" not in sql
    # instance stored or replaced, demographic mismatch, order matched
    assert sql.count(f"(r->>'actor', '{ActorKind.NODE.value}'") == 3
