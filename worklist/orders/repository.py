"""SQL for orders (``service.apply_order`` is the one writer): reading one, finding and
locking one, creating one (with its audit row and the lock on its studies, in one round
trip), locking the studies of an accession.

The statements are built once: an order message runs them every time, and building them
(coercing every value) cost more CPU than executing them (bench.hl7). Those that are
Core go to the session's connection, past the ORM's execution machinery; the callers
flush whatever is pending first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from psycopg.types.json import Jsonb
from sqlalchemy import Integer, String, Table, Text, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.db import driver_connection, driver_errors, driver_sql
from worklist.models import AuditEvent, Order, Study
from worklist.routing import repository as routing_repository

_ORDERS = cast(Table, Order.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_STUDIES = cast(Table, Study.__table__)
# OrderContent attribute -> Order column of the same name, for what a message may leave
# unsaid (None: the stored value is kept).
CONTENT_COLUMNS = (
    "placer_order_number",
    "filler_order_number",
    "ris_status",
    "patient_local_id",
    "nhs_number",
    "patient_name",
    "patient_birth_date",
    "procedure_code",
    "procedure_coding_system",
    "procedure_name",
    "priority",
    "ris_priority",
    "patient_source",
    "indication",
    "requested_at",
)
# Order column -> attribute of OrderContent.referrer.
REFERRER_COLUMNS = {
    "referrer_name": "name",
    "referrer_code": "code",
    "referrer_organisation": "organisation",
    "referrer_organisation_code": "organisation_code",
}
# Every column a new order's INSERT sets (said or not: NULL), so it is one statement.
CREATE_COLUMNS = (
    "site_id",
    "accession_number",
    "source",
    "status",
    "last_control",
    "updated_at",
    "patient_identifiers",
    *CONTENT_COLUMNS,
    *REFERRER_COLUMNS,
)

_LOCK_ORDER = (
    select(Order)
    .where(Order.site_id == bindparam("site_id"), Order.accession_number == bindparam("accession"))
    .with_for_update()
)
_LOCK_STUDIES = (
    select(_STUDIES.c.id)
    .where(
        _STUDIES.c.site_id == bindparam("site_id", type_=Integer),
        _STUDIES.c.accession_number == bindparam("accession", type_=Text),
    )
    .order_by(_STUDIES.c.id)
    .with_for_update()
)


def _create_statement() -> Any:
    # WITH created AS (INSERT INTO orders ... ON CONFLICT DO NOTHING RETURNING id),
    #      audited AS (INSERT INTO audit_log ... SELECT ... FROM created),
    #      locked AS (SELECT id FROM studies WHERE ... ORDER BY id FOR UPDATE)
    # SELECT (SELECT id FROM created), (SELECT array_agg(id) FROM locked)
    created = (
        insert(_ORDERS)
        .values({name: bindparam(name) for name in CREATE_COLUMNS})
        .on_conflict_do_nothing(index_elements=["site_id", "accession_number"])
        .returning(_ORDERS.c.id)
        .cte("created")
    )
    detail = bindparam("audit_detail", type_=JSONB).op("||")(
        func.jsonb_build_object(literal("order_id", String), created.c.id)
    )
    audited = (
        insert(_AUDIT)
        .from_select(
            ["actor", "actor_kind", "action", "site_id", "address", "detail"],
            select(
                bindparam("audit_actor", type_=Text),
                bindparam("audit_actor_kind", type_=String),
                bindparam("audit_action", type_=String),
                bindparam("audit_site_id", type_=Integer),
                bindparam("audit_address", type_=Text),
                detail,
            ),
        )
        .cte("audited")
    )
    locked = _LOCK_STUDIES.cte("locked")
    return select(
        select(created.c.id).scalar_subquery(),
        select(func.array_agg(locked.c.id)).scalar_subquery(),
    ).add_cte(audited)


_CREATE_ORDER = _create_statement()


@dataclass(frozen=True)
class Created:
    """What creating an order did: its id (None: the site has that accession already)
    and the site's studies of the accession, now locked."""

    order_id: int | None
    study_ids: tuple[int, ...]


# The routing rules' shared lock first (before any study is locked, as routing requires),
# then the accession's: one round trip.
_LOCK_ACCESSION = (
    f"SELECT {routing_repository.RULES_HELD}, "
    "pg_advisory_xact_lock(%(site_id)s, hashtext(%(accession)s))"
)


async def lock_accession(session: AsyncSession, *, site_id: int, accession: str) -> None:
    """Hold the routing rules steady (``routing.service.hold_rules``) and the site's
    accession until commit. ``index_instances_v4`` takes the same accession lock before it
    decides a new study has no order, so an order and the study's first images arriving
    together cannot both miss each other."""
    # Straight to the driver: nothing to compile or map, and the message path is hot.
    connection = await session.connection()
    await connection.exec_driver_sql(_LOCK_ACCESSION, {"site_id": site_id, "accession": accession})


async def lock_order(session: AsyncSession, *, site_id: int, accession: str) -> Order | None:
    """The site's order for ``accession``, locked for this transaction, or None."""
    params = {"site_id": site_id, "accession": accession}
    return (await session.scalars(_LOCK_ORDER, params)).one_or_none()


_CREATE_SQL, _CREATE_LITERALS = driver_sql(_CREATE_ORDER)
_JSONB_PARAMS = ("patient_identifiers", "audit_detail")


async def lock_and_create_order(
    session: AsyncSession, *, values: Mapping[str, Any], audit_row: Mapping[str, Any]
) -> Created:
    """``lock_accession``, then INSERT a new order from ``values`` (every column of
    ``CREATE_COLUMNS``), add ``audit_row`` (``audit.new_values``) with the new order's
    id merged into its detail, and lock the studies of the accession; nothing but the
    locks when the site has an order for the accession already.

    Both statements go in one round trip (psycopg's pipeline), with the transaction's
    BEGIN: a new order is the message a RIS sends most, and each round trip costs more
    CPU than the statement it carries. Whatever the session has pending is flushed first."""
    params: dict[str, Any] = {
        **_CREATE_LITERALS,
        **values,
        "accession": values["accession_number"],
        "audit_actor": audit_row["actor"],
        "audit_actor_kind": audit_row["actor_kind"],
        "audit_action": audit_row["action"],
        "audit_site_id": audit_row["site_id"],
        "audit_address": audit_row["address"],
        "audit_detail": audit_row["detail"],
    }
    for name in _JSONB_PARAMS:
        params[name] = Jsonb(params[name])
    if session.new or session.dirty or session.deleted:
        await session.flush()
    driver = await driver_connection(session)
    async with driver_errors(_CREATE_SQL):
        async with driver.pipeline():
            await driver.execute(_LOCK_ACCESSION, params)
            created = await driver.execute(_CREATE_SQL, params)
        row = await created.fetchone()
    assert row is not None
    order_id, study_ids = row
    return Created(order_id=order_id, study_ids=tuple(study_ids or ()))


async def lock_study_ids(session: AsyncSession, *, site_id: int, accession: str) -> list[int]:
    """The ids of the site's studies of ``accession``, locked, in id order."""
    connection = await session.connection()
    params = {"site_id": site_id, "accession": accession}
    return list((await connection.execute(_LOCK_STUDIES, params)).scalars())


async def order_exists(session: AsyncSession, *, site_id: int, accession_number: str) -> bool:
    """Whether the site has an order for this accession number."""
    stmt = select(Order.id).where(
        Order.site_id == site_id, Order.accession_number == accession_number
    )
    return (await session.scalar(stmt)) is not None


async def get_order(session: AsyncSession, *, order_id: int, site_id: int) -> Order | None:
    """The site's order with this id, if there is one."""
    stmt = select(Order).where(Order.id == order_id, Order.site_id == site_id)
    return (await session.scalars(stmt)).one_or_none()
