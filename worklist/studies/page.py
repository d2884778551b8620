"""The worklist page (``GET /api/v1/worklist``): one statement, compiled once per shape,
run on the driver with its audit row.

The page is the most frequent request there is, and most of its CPU went to building,
compiling and mapping SQLAlchemy statements, not to running them (bench/README.md,
"Worklist benchmark"). So the statement is assembled and compiled once per *shape*: who
the caller sees (every site, some, none), which filters are given, the literal statuses,
priorities and settings, whether a cursor is. Each request builds only its conditions
(``repository.filter_conditions`` with ``Binds``: the values, by name), and sends the
cached SQL with them to psycopg. The audit row of the read is written by the same
statement (a data-modifying CTE naming the studies shown), so the page is one round trip
and one implicit transaction, with the account's read before it.

Rows come back as ``repository.WORKLIST_COLUMNS`` name them, and go through the one item
builder (``WorklistItem.fields_from_columns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import BindParameter, Integer, bindparam, tuple_

from worklist.audit import repository as audit
from worklist.db import driver_errors, driver_sql
from worklist.enums import AuditAction, PatientSource, Priority, StudyStatus
from worklist.models import Study
from worklist.studies import repository
from worklist.studies.repository import WORKLIST_ORDER, Binds, WorklistKey
from worklist.studies.schemas import WorklistFilters
from worklist.studies.visibility import site_ids_condition


@dataclass(frozen=True)
class _Shape:
    """What decides the statement's text (everything else is a parameter)."""

    sees: str  # "all", "sites" or "none"
    binds: tuple[str, ...]
    statuses: tuple[StudyStatus, ...]
    priorities: tuple[Priority, ...]
    patient_sources: tuple[PatientSource, ...]
    mine: bool
    sites: bool
    after: bool


_PAGE_ORDER = "page.due_at, page.priority, page.received_at, page.id"


# Shapes seen, and their SQL. A few hundred at most: the shape holds no value, only
# which filters are given (and the enum literals among them).
_STATEMENTS: dict[_Shape, str] = {}
_MAX_STATEMENTS = 1024


def _statement(shape: _Shape, filters: WorklistFilters) -> str:
    sql = _STATEMENTS.get(shape)
    if sql is None:
        sql = _assemble(shape, filters)
        if len(_STATEMENTS) >= _MAX_STATEMENTS:
            _STATEMENTS.clear()
        _STATEMENTS[shape] = sql
    return sql


def _assemble(shape: _Shape, filters: WorklistFilters) -> str:
    # ``filters`` only for the conditions' structure, which ``shape`` fixes: the values
    # in it are those of the first request of the shape, and every run passes its own.
    binds = Binds()
    site_ids = None if shape.sees == "all" else (0,) if shape.sees == "sites" else ()
    stmt = repository.PAGE_SELECT
    if shape.sites:
        stmt = stmt.join(Study.site)
    conditions = repository.filter_conditions(
        filters, user_id=0 if shape.mine else None, binds=binds
    )
    stmt = stmt.where(site_ids_condition(site_ids, name="wl_visible_site_ids"), *conditions)
    if shape.after:
        after: list[BindParameter[Any]] = [
            bindparam(f"wl_after_{k}", required=False)
            for k in ("due_at", "priority", "received_at")
        ]
        after.append(bindparam("wl_after_id", type_=Integer, required=False))
        stmt = stmt.where(tuple_(*WORKLIST_ORDER) > tuple_(*after))
    page = stmt.order_by(*WORKLIST_ORDER).limit(bindparam("wl_rows", type_=Integer, required=False))
    # The values compiled in are this first request's: every run passes its own.
    page_sql, constants = driver_sql(page)
    assert all(name.startswith("wl_") for name in constants), "the page binds by name"
    orders = ", ".join(
        f"orders.{column.element.name} AS {column.key}" for column in repository.ORDER_COLUMNS
    )
    return f"""
WITH page AS ({page_sql}),
audited AS (
    INSERT INTO audit_log (actor, actor_kind, action, address, detail)
    SELECT %(audit_actor)s, %(audit_actor_kind)s, %(audit_action)s, %(audit_address)s,
        %(audit_detail)s::jsonb || jsonb_build_object('study_uids', coalesce(
            (SELECT jsonb_agg(shown.study_uid ORDER BY {_PAGE_ORDER.replace("page.", "shown.")})
             FROM (SELECT * FROM page ORDER BY {_PAGE_ORDER} LIMIT %(wl_shown)s) AS shown),
            '[]'::jsonb))
)
SELECT page.*, {orders}
FROM page LEFT OUTER JOIN orders ON orders.id = page.order_id
ORDER BY {_PAGE_ORDER}
"""


@dataclass(frozen=True)
class Reader:
    """Who reads the page, for visibility and the audit row."""

    user_id: int
    username: str
    site_ids: tuple[int, ...] | None  # visibility.visible_site_ids
    address: str | None


async def read_page(
    connection: psycopg.AsyncConnection[Any],
    *,
    reader: Reader,
    filters: WorklistFilters,
    after: WorklistKey | None,
    cursor: str | None,
    limit: int,
) -> Sequence[dict[str, Any]]:
    """Up to ``limit + 1`` visible studies matching ``filters`` in worklist order after
    ``after`` (keys of ``WORKLIST_COLUMNS``), the first ``limit`` audited as read by the
    same statement. ``connection`` is in autocommit: the statement is its transaction."""
    binds = Binds()
    repository.filter_conditions(filters, user_id=reader.user_id, binds=binds)
    sees = "all" if reader.site_ids is None else "sites" if reader.site_ids else "none"
    shape = _Shape(
        sees=sees,
        binds=tuple(binds.values),
        statuses=filters.statuses,
        priorities=filters.priorities,
        patient_sources=filters.patient_sources,
        mine=filters.mine,
        sites=repository.sites_joined(filters),
        after=after is not None,
    )
    sql = _statement(shape, filters)
    row = audit.new_values(
        actor=reader.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.WORKLIST_LIST,
        address=reader.address,
        detail={"filters": filters.as_audit_detail(), "cursor": cursor},
    )
    params: dict[str, Any] = {
        **binds.values,
        "wl_rows": limit + 1,
        "wl_shown": limit,
        "audit_actor": row["actor"],
        "audit_actor_kind": row["actor_kind"],
        "audit_action": row["action"],
        "audit_address": row["address"],
        "audit_detail": Jsonb(row["detail"]),
    }
    if reader.site_ids:
        params["wl_visible_site_ids"] = list(reader.site_ids)
    if after is not None:
        params |= {
            "wl_after_due_at": after.due_at,
            "wl_after_priority": after.priority.value,
            "wl_after_received_at": after.received_at,
            "wl_after_id": after.id,
        }
    async with driver_errors(sql), connection.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()
