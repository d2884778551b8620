"""SQL for allocation: which studies ``worklist/next`` may hand to a radiologist, and the cap.

The conditions are on ``Study`` joined with its ``Site`` (the ``sites`` table itself, not
an alias), so they fold into the one candidate query of ``worklist/next``: the site's
settings and the radiologist's count of held studies cost no extra round trip. The count
is an uncorrelated subquery, which PostgreSQL runs once per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Interval,
    ScalarSelect,
    Text,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from worklist.enums import GeneralReader, Priority, Subspecialty
from worklist.models import Claim, Site, Study, User
from worklist.studies.repository import active_claim_condition

# pg_advisory_xact_lock(int, int) namespace of a radiologist's allocations: "ALOC".
ALLOCATION_LOCK = 1095520067

# Stat and urgent studies are exempt from the cap; every other priority counts.
CAP_EXEMPT = (Priority.STAT, Priority.URGENT)


def _literals(values: Sequence[Any]) -> BindParameter[Any]:
    # Enum values only: rendered into the statement, so the planner sees them.
    return bindparam(None, [str(v) for v in values], expanding=True, literal_execute=True)


def cap_exempt_condition(study: Any = Study) -> ColumnElement[bool]:
    """True for studies of a priority the cap does not count (stat, urgent)."""
    condition: ColumnElement[bool] = study.priority.in_(_literals(CAP_EXEMPT))
    return condition


def held_count(user_id: int) -> ScalarSelect[int]:
    """How many studies the cap counts for ``user_id``: unexpired claims, not stat/urgent.

    Every claimed study counts, a patient's studies handed out together included (the cap
    is on studies held at once). Its own aliases, so it never correlates with an outer query.
    """
    claim, study = aliased(Claim), aliased(Study)
    return (
        select(func.count())
        .select_from(claim)
        .join(study, study.id == claim.study_id)
        .where(
            claim.user_id == user_id,
            active_claim_condition(claim),
            ~cap_exempt_condition(study),
        )
        .scalar_subquery()
    )


def under_cap_condition(user_id: int) -> ColumnElement[bool]:
    """True for studies ``user_id`` may take now: exempt, or they hold fewer than the cap
    of the study's site (``Site`` joined)."""
    return or_(cap_exempt_condition(), Site.allocation_cap > held_count(user_id))


def subspecialty_condition(user: User) -> ColumnElement[bool]:
    """True for studies ``next`` may hand to ``user`` by subspecialty (``Site`` joined).

    A study without a subspecialty, a ``general`` one, or one of the user's subspecialties
    always; any other by its site's ``general_reader`` rule: ``always``, ``never``, or
    ``after_share`` once that share of the time from arrival to its target has elapsed.
    """
    own = bindparam(None, sorted(set(user.subspecialties)), type_=ARRAY(Text))
    elapsed = func.now() - Study.received_at
    # interval * double precision, which SQLAlchemy's Interval type does not declare.
    target = (Study.due_at - Study.received_at).self_group()
    share_of_target = target.op("*", return_type=Interval())(Site.general_after_share)
    return or_(
        Study.subspecialty.is_(None),
        Study.subspecialty == Subspecialty.GENERAL.value,
        Study.subspecialty == any_(own),
        Site.general_reader == GeneralReader.ALWAYS.value,
        and_(
            Site.general_reader == GeneralReader.AFTER_SHARE.value,
            elapsed >= share_of_target,
        ),
    )


async def lock_allocations(session: AsyncSession, *, user_id: int) -> None:
    """Serialise ``user_id``'s new claims until the transaction ends.

    Two of their requests at once (two tabs) would each count the studies held before the
    other's claim commits, and together go over the cap. Taken before any study row is
    locked by ``next`` (which then only skips locked rows, never waits on them), and after
    the one study row a direct claim locks; so it never closes a cycle with row locks.
    """
    await session.execute(
        select(func.pg_advisory_xact_lock(ALLOCATION_LOCK, user_id)),
    )


async def count_held(session: AsyncSession, *, user_id: int) -> int:
    """The number of studies the cap counts for ``user_id`` now."""
    return int(await session.scalar(select(held_count(user_id))) or 0)
