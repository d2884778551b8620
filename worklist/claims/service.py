"""Claims as leases: who may claim, takeovers, releases, ``worklist/next`` and renewals.

Every change locks the study row first (see ``worklist.claims.repository``), is audited
and stages its worklist event in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.allocation import repository as allocation
from worklist.audit import repository as audit
from worklist.claims import groups, next_sql, repository
from worklist.claims.schemas import ClaimOut
from worklist.db import driver_connection
from worklist.enums import AuditAction, Priority, Role
from worklist.errors import Conflict, Forbidden, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import Claim, Study, User
from worklist.studies import lifecycle
from worklist.studies import repository as studies_repository
from worklist.studies.lifecycle import StudyEvent
from worklist.studies.repository import StudyLoad
from worklist.studies.schemas import WorklistFilters, WorklistItem
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import visible_study_condition
from worklist.users.repository import Account

RELEASING_ROLES = (Role.MANAGER, Role.ADMIN)

ONLY_RADIOLOGISTS = (
    "only radiologists claim studies to report them "
    "(managers and admins may triage and release claims)"
)
CLAIMED_BY_OTHER = "study is claimed by another radiologist"
NOT_CLAIMED = "study is not claimed"
NOT_RELEASABLE = (
    "only the claim holder, a manager of the study's site or an admin may release this claim"
)
NOT_HOLDER = "you do not hold the claim on this study: claim it first"

NEXT_ONLY = (
    "routine studies of this site are handed out by worklist/next only: "
    "POST /api/v1/worklist/next takes the most urgent one"
)
AT_CAP = (
    "you hold as many studies as this site's cap allows: report or release one first "
    "(stat and urgent studies are exempt)"
)
REASON_NEXT_ONLY = "next_only"
REASON_CAP = "cap"

RELEASE_REASON_RELEASED = "released"
RELEASE_REASON_EXPIRED = "expired"


class ClaimedByOther(Conflict):
    """Someone else holds an unexpired claim on the study."""

    def __init__(self, detail: str, claimed_by: str) -> None:
        super().__init__(detail)
        self.claimed_by = claimed_by

    def body(self) -> dict[str, Any]:
        """The detail and who holds the claim."""
        return {**super().body(), "claimed_by": self.claimed_by}


class AllocationRefused(Conflict):
    """A site's allocation rule refuses the claim (``reason``: next_only or cap)."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The detail and the rule that refused it."""
        return {**super().body(), "reason": self.reason}


class ClaimNotHeld(Forbidden):
    """The user does not hold the study's claim (renewals are for the holder only)."""


def _claim_out(study: Study, claim: Claim, username: str) -> ClaimOut:
    return ClaimOut(
        study_uid=study.study_uid,
        username=username,
        claimed_at=claim.claimed_at,
        expires_at=claim.expires_at,
    )


def _announce_claim(
    session: AsyncSession, *, site_id: int, study_uid: str, expires_at: datetime, username: str
) -> None:
    stage(
        session,
        WorklistEvent(
            type=EventType.STUDY_CLAIMED,
            site_id=site_id,
            study_uid=study_uid,
            data={"username": username, "expires_at": expires_at.isoformat()},
        ),
    )


def _announce_release(
    session: AsyncSession, *, site_id: int, study_uid: str, holder: str, released_by: str
) -> None:
    stage(
        session,
        WorklistEvent(
            type=EventType.STUDY_RELEASED,
            site_id=site_id,
            study_uid=study_uid,
            data={
                "reason": RELEASE_REASON_RELEASED,
                "username": holder,
                "released_by": released_by,
            },
        ),
    )


def _audit(
    session: AsyncSession,
    *,
    user: User,
    action: AuditAction,
    study_uid: str,
    site_id: int,
    address: str | None,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        study_uid=study_uid,
        site_id=site_id,
        address=address,
        detail=detail,
    )


async def _check_allocation(session: AsyncSession, *, user: User, study: Study) -> None:
    """The site's rules for a new direct claim (not a renewal): next-only, then the cap."""
    if study.priority is Priority.ROUTINE and study.site.next_only_routine:
        raise AllocationRefused(NEXT_ONLY, reason=REASON_NEXT_ONLY)
    if study.priority in allocation.CAP_EXEMPT:
        return
    await allocation.lock_allocations(session, user_id=user.id)
    if await allocation.count_held(session, user=user) >= study.site.allocation_cap:
        raise AllocationRefused(AT_CAP, reason=REASON_CAP)


async def claim_study(
    *, session: AsyncSession, user: User, study_uid: str, lease_seconds: float, address: str | None
) -> ClaimOut:
    """Claim a study for a radiologist; the holder renews, an expired claim is taken over.

    ``ClaimedByOther`` while someone else's lease runs; ``Conflict`` for a study that is
    still receiving or already reported.
    """
    study = await studies_repository.get_visible_study(
        session,
        study_uid=study_uid,
        visible=visible_study_condition(user),
        load=StudyLoad.SITE_AND_PATIENT,
        lock=True,
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    # A radiologist sees exactly the sites they hold reporting privileges at.
    if user.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    lifecycle.next_status(study.status, StudyEvent.CLAIMED)  # refuses receiving, reported
    held = await repository.get_claim(session, study_id=study.id)
    mine = held is not None and held.claim.user_id == user.id
    if held is not None and held.active and not mine:
        raise ClaimedByOther(CLAIMED_BY_OTHER, claimed_by=held.username)
    if not mine:
        await _check_allocation(session, user=user, study=study)
    action, detail = AuditAction.CLAIM_RENEWED, {}
    # The study lock keeps the holder's row in place, so a renewal always finds it.
    claim = None
    if mine:
        claim = await repository.extend_claim(
            session, study_id=study.id, user_id=user.id, lease_seconds=lease_seconds
        )
        await groups.extend_group(
            session, first_id=study.id, user_id=user.id, lease_seconds=lease_seconds
        )
    if claim is None:
        claim = await repository.put_claim(
            session, study_id=study.id, user_id=user.id, lease_seconds=lease_seconds
        )
        action = AuditAction.CLAIM_CREATED
        detail = {"taken_over_from": held.username} if held is not None else {}
    lifecycle.apply(study, StudyEvent.CLAIMED)
    await session.flush()
    _announce_claim(
        session,
        site_id=study.site_id,
        study_uid=study.study_uid,
        expires_at=claim.expires_at,
        username=user.username,
    )
    _audit(
        session,
        user=user,
        action=action,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={**detail, "expires_at": claim.expires_at.isoformat()},
    )
    return _claim_out(study, claim, user.username)


async def release_claim(
    *, session: AsyncSession, user: User, study_uid: str, address: str | None
) -> None:
    """End the study's claim (its holder, a manager of its site or an admin); back to ready.

    ``Conflict`` when the study has no claim: the caller learns their release did nothing.
    """
    study = await studies_repository.get_visible_study(
        session,
        study_uid=study_uid,
        visible=visible_study_condition(user),
        load=StudyLoad.SITE_AND_PATIENT,
        lock=True,
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    held = await repository.get_claim(session, study_id=study.id)
    if held is None:
        raise Conflict(NOT_CLAIMED)
    # Managers see only their own site, so a visible study is one of their site.
    if held.claim.user_id != user.id and user.role not in RELEASING_ROLES:
        raise Forbidden(NOT_RELEASABLE)
    await repository.delete_claim(session, study_id=study.id)
    lifecycle.apply(study, StudyEvent.CLAIM_ENDED)
    await session.flush()
    members = await groups.release_group(session, first_id=study.id, user_id=held.claim.user_id)
    released = [(study.study_uid, study.site_id, held.claim.expires_at)]
    released += [(m.study_uid, m.site_id, m.expires_at) for m in members]
    for study_uid, site_id, expires_at in released:
        _announce_release(
            session,
            site_id=site_id,
            study_uid=study_uid,
            holder=held.username,
            released_by=user.username,
        )
        detail: dict[str, Any] = {"holder": held.username, "expires_at": expires_at.isoformat()}
        if study_uid != study.study_uid:
            detail["group"] = study.study_uid
        _audit(
            session,
            user=user,
            action=AuditAction.CLAIM_RELEASED,
            study_uid=study_uid,
            site_id=site_id,
            address=address,
            detail=detail,
        )


async def next_case(
    *,
    session: AsyncSession,
    account: Account,
    filters: WorklistFilters,
    lease_seconds: float,
    address: str | None,
) -> dict[str, Any] | None:
    """Claim the most urgent study the radiologist may report among those matching ``filters``
    (a ``NextCase``'s fields).

    Eligible: ``ready``, or ``in_progress`` with no unexpired claim, at a site they hold
    privileges at, of their subspecialties or allowed by the site's general-reader rule,
    and stat/urgent or under the site's cap; the status filter can only narrow that, and
    ``mine`` is ignored. The patient's other unreported studies the caller may see come
    with it (``also_claimed``). None when nothing is eligible; ``AllocationRefused``
    (reason ``cap``) when something would be but for the cap. The statements go to the
    driver in the session's transaction (``next_sql``); events are staged on the session.
    """
    if account.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    statuses = [s for s in filters.statuses if lifecycle.allows(s, StudyEvent.CLAIMED)]
    if not statuses:
        return None
    lease = timedelta(seconds=lease_seconds)
    connection = await driver_connection(session)
    passed_over: list[int] = []
    while True:
        # The caller's allocation lock comes with the first pick (``lock_allocations``).
        taken = await next_sql.pick(
            connection,
            account=account,
            filters=filters,
            statuses=statuses,
            exclude=passed_over,
            lease=lease,
            lock=not passed_over,
        )
        if taken is None:
            blocked = await next_sql.blocked_by_cap(
                connection, account=account, filters=filters, statuses=statuses, lease=lease
            )
            if blocked:
                raise AllocationRefused(AT_CAP, reason=REASON_CAP)
            return None
        if taken.expires_at is not None and taken.claimed_at is not None:
            break
        # Claimed by a transaction that committed after our snapshot: try the next one.
        passed_over.append(taken.study_id)
    via = {"via": "worklist.next", "filters": filters.as_audit_detail()}
    members, row = await next_sql.claim_rest(
        connection,
        account=account,
        taken=taken,
        lease=lease,
        audit_row=_claim_audit(account, address, taken, via),
    )
    if members:
        await next_sql.write_audit(
            connection,
            [
                _claim_audit(account, address, member, {**via, "group": taken.study_uid})
                for member in members
            ],
        )
    claimed_all: list[next_sql.Taken | next_sql.Member] = [taken, *members]
    for claimed in claimed_all:
        assert claimed.expires_at is not None
        _announce_claim(
            session,
            site_id=claimed.site_id,
            study_uid=claimed.study_uid,
            expires_at=claimed.expires_at,
            username=account.username,
        )
    # A ``NextCase``'s fields, as JSON writes them (``worklist.jsonbody``).
    return {
        "claim": {
            "study_uid": taken.study_uid,
            "username": account.username,
            "claimed_at": taken.claimed_at,
            "expires_at": taken.expires_at,
        },
        "study": WorklistItem.fields_from_columns(row),
        "also_claimed": [m.study_uid for m in members],
    }


def _claim_audit(
    account: Account,
    address: str | None,
    claimed: next_sql.Taken | next_sql.Member,
    detail: dict[str, Any],
) -> dict[str, Any]:
    assert claimed.expires_at is not None
    return audit.new_values(
        actor=account.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.CLAIM_CREATED,
        study_uid=claimed.study_uid,
        site_id=claimed.site_id,
        address=address,
        detail={**detail, "expires_at": claimed.expires_at.isoformat()},
    )


async def renew_claim(
    session: AsyncSession,
    *,
    study_id: int,
    user_id: int,
    lease_seconds: float,
    address: str | None = None,
) -> Claim:
    """Extend ``user_id``'s lease on the study from now (report saves call this).

    Locks the study row first unless the caller already has; raises ``ClaimNotHeld`` when
    the user holds no claim on it (one that lapsed but was not yet taken over still counts).
    """
    study = await repository.lock_study(session, study_id=study_id)
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    claim = await repository.extend_claim(
        session, study_id=study_id, user_id=user_id, lease_seconds=lease_seconds
    )
    if claim is None:
        raise ClaimNotHeld(NOT_HOLDER)
    await groups.extend_group(
        session, first_id=study_id, user_id=user_id, lease_seconds=lease_seconds
    )
    user = await session.get_one(User, user_id)
    _audit(
        session,
        user=user,
        action=AuditAction.CLAIM_RENEWED,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"expires_at": claim.expires_at.isoformat()},
    )
    return claim
