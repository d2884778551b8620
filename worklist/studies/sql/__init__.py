"""SQL the lifecycle owns, kept as ``.sql`` files and installed by the migrations.

Each file is one released version of a database function; migrations name the version
they install, so an old migration keeps creating exactly what it created when written.
"""

from __future__ import annotations

from importlib.resources import files

DROP_INDEX_INSTANCES = "DROP FUNCTION IF EXISTS index_instances(jsonb, timestamptz)"
# The version the newest migration installs (tests hold the database to it).
INDEX_INSTANCES_CURRENT = "index_instances_v4"


def read_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (files(__package__) / f"{name}.sql").read_text(encoding="utf-8")
