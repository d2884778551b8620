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
from worklist.db import DriverSql, StatementCache, driver_errors, driver_sql
from worklist.enums import AuditAction
from worklist.models import Study
from worklist.studies import repository
from worklist.studies.repository import WORKLIST_ORDER, Binds, FilterShape, WorklistKey
from worklist.studies.schemas import WorklistFilters
from worklist.studies.visibility import (
    shaped_visibility_condition,
    visibility_params,
    visibility_shape,
    visible_site_ids,
)
from worklist.users.repository import Account


@dataclass(frozen=True)
class _Shape:
    """What decides the statement's text (everything else is a parameter)."""

    sees: str  # visibility.visibility_shape
    filters: FilterShape
    after: bool


_PAGE_ORDER = "page.due_at, page.priority, page.received_at, page.id"
_STATEMENTS: StatementCache[_Shape] = StatementCache()


def _assemble(shape: _Shape, filters: WorklistFilters) -> DriverSql:
    # ``filters`` only for the conditions' structure, which ``shape`` fixes: the values
    # in it are those of the first request of the shape, and every run passes its own.
    stmt = repository.PAGE_SELECT
    if shape.filters.sites_joined:
        stmt = stmt.join(Study.site)
    conditions = repository.filter_conditions(
        filters, user_id=0 if shape.filters.mine else None, binds=Binds()
    )
    stmt = stmt.where(shaped_visibility_condition(shape.sees), *conditions)
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
    sql = f"""
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
    return sql, {}


async def read_page(
    connection: psycopg.AsyncConnection[Any],
    *,
    account: Account,
    address: str | None,
    filters: WorklistFilters,
    after: WorklistKey | None,
    cursor: str | None,
    limit: int,
) -> Sequence[dict[str, Any]]:
    """Up to ``limit + 1`` studies ``account`` sees matching ``filters`` in worklist order
    after ``after`` (keys of ``WORKLIST_COLUMNS``), the first ``limit`` audited as read by
    the same statement. ``connection`` is in autocommit: the statement is its transaction."""
    binds = Binds()
    repository.filter_conditions(filters, user_id=account.id, binds=binds)
    site_ids = visible_site_ids(account.role, account.site_ids)
    shape = _Shape(
        sees=visibility_shape(site_ids),
        filters=repository.filter_shape(filters, binds),
        after=after is not None,
    )
    sql, _ = _STATEMENTS.get(shape, lambda: _assemble(shape, filters))
    row = audit.new_values(
        actor=account.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.WORKLIST_LIST,
        address=address,
        detail={"filters": filters.as_audit_detail(), "cursor": cursor},
    )
    params: dict[str, Any] = {
        **binds.values,
        **visibility_params(site_ids),
        "wl_rows": limit + 1,
        "wl_shown": limit,
        "audit_actor": row["actor"],
        "audit_actor_kind": row["actor_kind"],
        "audit_action": row["action"],
        "audit_address": row["address"],
        "audit_detail": Jsonb(row["detail"]),
    }
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
