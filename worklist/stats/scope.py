"""What every stats figure shares: the period (``since``/``until``), whose sites it covers,
the clock it is measured against, and its audit row.

``since`` and ``until`` are whole UTC days, both included. Peer review
(``worklist.doubleread.stats``) and the figures here read them through ``Period``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    SQLColumnExpression,
    any_,
    bindparam,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction, Role
from worklist.errors import Forbidden, InvalidInput
from worklist.models import User

NOT_FOR_THIS_ROLE = "network figures are for managers and admins"


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    """Whole UTC days from ``since`` to ``until`` (both included); either may be open."""

    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidInput("since is after until")

    def or_since(self, default: date) -> Period:
        """This period, starting at ``default`` when it names no ``since``."""
        return self if self.since is not None else Period(default, self.until)

    def conditions(self, column: SQLColumnExpression[Any]) -> list[ColumnElement[bool]]:
        """SQL conditions keeping ``column`` inside the period."""
        conditions: list[ColumnElement[bool]] = []
        if self.since is not None:
            conditions.append(column >= day_start(self.since))
        if self.until is not None:
            conditions.append(column < day_start(self.until + timedelta(days=1)))
        return conditions

    def audit_detail(self) -> dict[str, Any]:
        """The period as the audit row records it."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True)
class Sites:
    """The sites a figure covers: ``ids`` (None: every site of the network)."""

    ids: tuple[int, ...] | None

    @classmethod
    def of(cls, user: User) -> Sites:
        """An admin's (every site) or a manager's (their sites); Forbidden for anyone else."""
        if user.role is Role.ADMIN:
            return cls(None)
        if user.role is Role.MANAGER:
            return cls(tuple(sorted(site.id for site in user.sites)))
        raise Forbidden(NOT_FOR_THIS_ROLE)

    def condition(self, column: SQLColumnExpression[Any]) -> ColumnElement[bool]:
        """True where ``column`` (a site id) is one of these sites."""
        if self.ids is None:
            return true()
        # An array, not an IN-list: one statement text whatever the number of sites.
        return column == any_(bindparam(None, list(self.ids), type_=ARRAY(Integer)))


def clock(now: datetime | None) -> ColumnElement[datetime]:
    """``now`` as SQL, or the database clock (the transaction's start) when it is None.

    Only tests pass a ``now``: the API measures ages against the database's clock.
    """
    if now is None:
        return func.now()
    return literal(now, DateTime(timezone=True))


async def database_now(session: AsyncSession) -> datetime:
    """The database clock (the transaction's start), as ``clock(None)`` reads it in SQL."""
    at: datetime = (await session.execute(select(func.now()))).scalar_one()
    return at


async def figure_settings(session: AsyncSession) -> None:
    """PostgreSQL's settings for the rest of this transaction (a stats request).

    No JIT: the figures probe an index once per study, which the planner costs above
    ``jit_above_cost``; it then spent 300 ms compiling a statement that runs in 40 ms.
    ``work_mem`` 32 MB: 90 days of turnaround sort ~80,000 durations, which spilled to
    disk at the default 4 MB (EXPLAIN ANALYZE at 1M studies, docs/stats.md).
    """
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SET LOCAL work_mem = '32MB'"))


def record_view(
    session: AsyncSession,
    *,
    user: User,
    address: str | None,
    figure: str,
    period: Period,
    action: AuditAction = AuditAction.STATS_VIEW,
    **detail: Sequence[str] | str | None,
) -> None:
    """The one audit row of a stats request (which figure, which period, what else it named)."""
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        address=address,
        detail={"figure": figure, **period.audit_detail(), **detail},
    )
