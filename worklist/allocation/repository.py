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
    Integer,
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

from worklist.enums import GeneralReader, Priority
from worklist.models import Claim, Site, Study, User
from worklist.studies.repository import active_claim_condition

# pg_advisory_xact_lock(int, int) namespace of a radiologist's allocations: "ALOC".
ALLOCATION_LOCK = 1095520067

# The vocabulary's code (DESIGN's defaults) for work any reader takes.
GENERAL_SUBSPECIALTY = "general"

# Stat and urgent studies are exempt from the cap; every other priority counts.
CAP_EXEMPT = (Priority.STAT, Priority.URGENT)


def _literals(values: Sequence[Any]) -> BindParameter[Any]:
    # Enum values only: rendered into the statement, so the planner sees them.
    return bindparam(None, [str(v) for v in values], expanding=True, literal_execute=True)


def cap_exempt_condition(study: Any = Study) -> ColumnElement[bool]:
    """True for studies of a priority the cap does not count (stat, urgent)."""
    condition: ColumnElement[bool] = study.priority.in_(_literals(CAP_EXEMPT))
    return condition


# The caller's values are bound by name when the statement runs (``eligibility_params``):
# the conditions are built once, not per request (aliasing ``studies`` alone cost more than
# the rest of a ``next``'s statement building).
_USER_ID = bindparam("allocation_user_id", type_=Integer, required=False)
_SUBSPECIALTIES = bindparam("allocation_subspecialties", type_=ARRAY(Text), required=False)


def _held_count() -> ScalarSelect[int]:
    """How many studies the cap counts for the caller: unexpired claims, not stat/urgent.

    Every claimed study counts, a patient's studies handed out together included (the cap
    is on studies held at once). Its own aliases, so it never correlates with an outer query.
    """
    claim, study = aliased(Claim), aliased(Study)
    return (
        select(func.count())
        .select_from(claim)
        .join(study, study.id == claim.study_id)
        .where(
            claim.user_id == _USER_ID,
            active_claim_condition(claim),
            ~cap_exempt_condition(study),
        )
        .scalar_subquery()
    )


def _subspecialty_condition() -> ColumnElement[bool]:
    # interval * double precision, which SQLAlchemy's Interval type does not declare.
    target = (Study.due_at - Study.received_at).self_group()
    share_of_target = target.op("*", return_type=Interval())(Site.general_after_share)
    return or_(
        Study.subspecialty.is_(None),
        Study.subspecialty == GENERAL_SUBSPECIALTY,
        Study.subspecialty == any_(_SUBSPECIALTIES),
        Site.general_reader == GeneralReader.ALWAYS.value,
        and_(
            Site.general_reader == GeneralReader.AFTER_SHARE.value,
            func.now() - Study.received_at >= share_of_target,
        ),
    )


HELD_COUNT = _held_count()

# True for studies the caller may take now (``Site`` joined): exempt, or they hold fewer
# than the cap of the study's site.
UNDER_CAP = or_(cap_exempt_condition(), Site.allocation_cap > HELD_COUNT)

# True for studies ``next`` may hand to the caller by subspecialty (``Site`` joined): a
# study without a subspecialty, a ``general`` one, or one of the caller's; any other by its
# site's ``general_reader`` rule: ``always``, ``never``, or ``after_share`` once that share
# of the time from arrival to its target has elapsed.
BY_SUBSPECIALTY = _subspecialty_condition()


def eligibility_params(user: User) -> dict[str, Any]:
    """The values ``UNDER_CAP``, ``BY_SUBSPECIALTY`` and ``HELD_COUNT`` take for ``user``."""
    return {
        "allocation_user_id": user.id,
        "allocation_subspecialties": sorted(set(user.subspecialties)),
    }


LOCK = select(func.pg_advisory_xact_lock(ALLOCATION_LOCK, _USER_ID))


async def lock_allocations(session: AsyncSession, *, user_id: int) -> None:
    """Serialise ``user_id``'s new claims until the transaction ends.

    Two of their requests at once (two tabs) would each count the studies held before the
    other's claim commits, and together go over the cap. Taken before any study row is
    locked by ``next`` (which then only skips locked rows, never waits on them), and after
    the one study row a direct claim locks; so it never closes a cycle with row locks.
    """
    await session.execute(LOCK, {"allocation_user_id": user_id})


async def count_held(session: AsyncSession, *, user: User) -> int:
    """The number of studies the cap counts for ``user`` now."""
    held = await session.scalar(select(HELD_COUNT), eligibility_params(user))
    return int(held or 0)
