"""SQL for users and their site privileges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from worklist.db import driver_errors
from worklist.enums import Role
from worklist.models import Site, User, user_sites
from worklist.studies import grants


async def get_user(session: AsyncSession, username: str, *, lock: bool = False) -> User | None:
    """The user with this username (sites and home site loaded), or None.

    ``lock`` takes the row lock, so concurrent changes to one account serialise.
    """
    stmt = (
        select(User)
        .where(User.username == username)
        .options(selectinload(User.sites), joinedload(User.home_site))
    )
    if lock:
        stmt = stmt.with_for_update(of=User).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def load_account(session: AsyncSession, username: str) -> User | None:
    """The user with this username, sites and home site loaded, in one query (every request).

    Only the site columns a request reads are loaded (the webhook secrets stay behind).
    """
    site_columns = (Site.id, Site.code, Site.name, Site.active)
    stmt = (
        select(User)
        .where(User.username == username)
        .options(
            joinedload(User.sites).load_only(*site_columns),
            joinedload(User.home_site).load_only(*site_columns),
            grants.load_grants(),
        )
    )
    return (await session.scalars(stmt)).unique().one_or_none()


@dataclass(frozen=True)
class Account:
    """What the hot read routes need of the caller (``read_account``): no ORM objects."""

    id: int
    username: str
    role: Role
    active: bool
    token_version: int
    site_ids: tuple[int, ...]
    subspecialties: tuple[str, ...]


# The account and the ids of the sites it holds privileges at (what visibility reads).
_READ_ACCOUNT = """
SELECT u.id, u.username, u.role::text, u.active, u.token_version,
       ARRAY(SELECT us.site_id FROM user_sites us WHERE us.user_id = u.id ORDER BY us.site_id),
       u.subspecialties
FROM users u
WHERE u.username = %(username)s
"""


async def read_account(connection: psycopg.AsyncConnection[Any], username: str) -> Account | None:
    """The user with this username and their sites' ids, by one statement on the driver
    (``db.driver_connection``); None when there is none."""
    async with driver_errors(_READ_ACCOUNT):
        cursor = await connection.execute(_READ_ACCOUNT, {"username": username})
        row = await cursor.fetchone()
    if row is None:
        return None
    user_id, name, role, active, version, site_ids, subspecialties = row
    return Account(
        user_id, name, Role(role), active, version, tuple(site_ids), tuple(subspecialties)
    )


async def list_users(
    session: AsyncSession,
    *,
    scope_site_id: int | None,
    role: Role | None = None,
    site_id: int | None = None,
    disabled: bool | None = None,
) -> list[User]:
    """Users by username (sites and home site loaded).

    ``scope_site_id`` narrows to a manager's scope: non-admin users holding a privilege
    at that site or employed by it. ``site_id`` filters on holding a privilege there.
    """
    stmt = select(User).options(selectinload(User.sites), joinedload(User.home_site))
    if scope_site_id is not None:
        stmt = stmt.where(User.role != Role.ADMIN, _in_scope(scope_site_id))
    if role is not None:
        stmt = stmt.where(User.role == role)
    if site_id is not None:
        stmt = stmt.where(_holds(site_id))
    if disabled is not None:
        stmt = stmt.where(User.active.is_(not disabled))
    return list(await session.scalars(stmt.order_by(User.username)))


def _holds(site_id: int) -> ColumnElement[bool]:
    return exists().where(user_sites.c.user_id == User.id, user_sites.c.site_id == site_id)


def _in_scope(site_id: int) -> ColumnElement[bool]:
    return or_(_holds(site_id), User.home_site_id == site_id)


async def add_user(
    session: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: Role,
    sites: list[Site],
    name: str | None = None,
    registration: str | None = None,
    home_site: Site | None = None,
    subspecialties: list[str] | None = None,
) -> User:
    """Insert a user with privileges at ``sites``."""
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        sites=sites,
        name=name,
        registration=registration,
        home_site=home_site,
        subspecialties=subspecialties or [],
    )
    session.add(user)
    await session.flush()
    return user
