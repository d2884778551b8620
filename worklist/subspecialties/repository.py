"""SQL of the subspecialty vocabulary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import RoutingRule, Subspecialty


async def list_subspecialties(
    session: AsyncSession, *, include_inactive: bool
) -> Sequence[Subspecialty]:
    """The vocabulary by code (active codes only unless ``include_inactive``)."""
    stmt = select(Subspecialty).order_by(Subspecialty.code)
    if not include_inactive:
        stmt = stmt.where(Subspecialty.active)
    return (await session.scalars(stmt)).all()


async def get_subspecialty(
    session: AsyncSession, code: str, *, lock: bool = False
) -> Subspecialty | None:
    """One code of the vocabulary, or None."""
    stmt = select(Subspecialty).where(Subspecialty.code == code)
    if lock:
        stmt = stmt.with_for_update()
    result: Subspecialty | None = await session.scalar(stmt)
    return result


async def active_codes(session: AsyncSession, codes: Iterable[str]) -> set[str]:
    """Those of ``codes`` that are active codes of the vocabulary."""
    wanted = set(codes)
    if not wanted:
        return set()
    stmt = select(Subspecialty.code).where(Subspecialty.code.in_(wanted), Subspecialty.active)
    return set(await session.scalars(stmt))


async def add_subspecialty(session: AsyncSession, *, code: str, name: str) -> Subspecialty | None:
    """Insert a code; None when the vocabulary has it already (active or not)."""
    stmt = (
        insert(Subspecialty)
        .values(code=code, name=name)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Subspecialty.code)
    )
    if await session.scalar(stmt) is None:
        return None
    return await get_subspecialty(session, code)


async def used_by_rules(session: AsyncSession, code: str) -> bool:
    """Whether a routing rule gives studies this code."""
    stmt = select(RoutingRule.position).where(RoutingRule.subspecialty == code).limit(1)
    return await session.scalar(stmt) is not None
