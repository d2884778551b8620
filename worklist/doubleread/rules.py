"""A site's double-reading rules, and the second read they create after a first final report.

The first rule that matches a study decides (``modality`` among the study's modalities,
``subspecialty`` the study's; a null field matches any study): ``share`` 1 makes a
``double_read`` of every study, a smaller share a ``peer_review`` of that random share.
The draw is ``random.random`` unless the session's ``info[DRAW_KEY]`` names another
callable (tests make it deterministic through ``async_sessionmaker.configure(info=...)``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.doubleread import repository
from worklist.doubleread.schemas import (
    DoubleReadingRuleIn,
    DoubleReadingRuleOut,
    ReadKind,
    ReadStatus,
)
from worklist.enums import AuditAction, Role
from worklist.errors import Forbidden, InvalidInput, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import DoubleRead, DoubleReadingRule, Site, Study, User
from worklist.sites import repository as sites

DRAW_KEY = "worklist.doubleread.draw"
Draw = Callable[[], float]

SITE_NOT_FOUND = "site not found"
NOT_SITE_MANAGER = "only the site's managers and network admins set its double reading"
UNKNOWN_SUBSPECIALTY = "unknown subspecialty: {codes}"


def check_site_manager(user: User, code: str) -> None:
    """403 for roles that manage no site; 404 for a manager asking about another site."""
    if user.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(NOT_SITE_MANAGER)
    if user.role is Role.MANAGER and code not in {s.code for s in user.sites}:
        raise NotFound(SITE_NOT_FOUND)


async def _managed_site(session: AsyncSession, *, user: User, code: str, lock: bool) -> Site:
    check_site_manager(user, code)
    site = await sites.get_site_by_code(session, code, lock=lock)
    if site is None:
        raise NotFound(SITE_NOT_FOUND)
    return site


def _out(rules: Sequence[DoubleReadingRule]) -> list[DoubleReadingRuleOut]:
    return [
        DoubleReadingRuleOut(
            modality=r.modality,
            subspecialty=r.subspecialty,
            share=r.share,
            other_trust=r.other_trust,
        )
        for r in rules
    ]


async def get_rules(*, session: AsyncSession, user: User, code: str) -> list[DoubleReadingRuleOut]:
    """The site's rules in order (its managers and admins)."""
    site = await _managed_site(session, user=user, code=code, lock=False)
    return _out(await repository.list_rules(session, site_id=site.id))


async def put_rules(
    *,
    session: AsyncSession,
    user: User,
    code: str,
    rules: Sequence[DoubleReadingRuleIn],
    address: str | None,
) -> list[DoubleReadingRuleOut]:
    """Replace the site's rules (its managers and admins); audited with the old and new list."""
    site = await _managed_site(session, user=user, code=code, lock=True)
    wanted = {r.subspecialty for r in rules if r.subspecialty is not None}
    unknown = wanted - await repository.known_subspecialties(session, wanted)
    if unknown:
        raise InvalidInput(UNKNOWN_SUBSPECIALTY.format(codes=", ".join(sorted(unknown))))
    before = _out(await repository.list_rules(session, site_id=site.id))
    rows = [
        DoubleReadingRule(
            site_id=site.id,
            position=position,
            modality=rule.modality.upper() if rule.modality else None,
            subspecialty=rule.subspecialty,
            share=rule.share,
            other_trust=rule.other_trust,
        )
        for position, rule in enumerate(rules)
    ]
    await repository.replace_rules(session, site_id=site.id, rules=rows)
    after = _out(rows)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.DOUBLE_READING_CHANGED,
        site_id=site.id,
        address=address,
        detail={
            "before": [r.model_dump() for r in before],
            "after": [r.model_dump() for r in after],
        },
    )
    return after


def matching_rule(rules: Sequence[DoubleReadingRule], study: Study) -> DoubleReadingRule | None:
    """The first rule that matches ``study`` (null fields match any study)."""
    for rule in rules:
        if rule.modality is not None and rule.modality not in study.modalities:
            continue
        if rule.subspecialty is not None and rule.subspecialty != study.subspecialty:
            continue
        return rule
    return None


async def after_first_final(
    session: AsyncSession, *, study: Study, author_id: int, user: User, address: str | None
) -> DoubleRead | None:
    """Create the study's second read if its site's rules ask for one (in the signing
    transaction); None when no rule matches or the draw passes it by."""
    rule = matching_rule(await repository.list_rules(session, site_id=study.site_id), study)
    if rule is None or await repository.has_second_read(session, study_id=study.id):
        return None
    if rule.share >= 1:
        kind = ReadKind.DOUBLE_READ
    else:
        draw: Draw = session.info.get(DRAW_KEY, random.random)
        if draw() >= rule.share:
            return None
        kind = ReadKind.PEER_REVIEW
    read = await create_read(
        session,
        study=study,
        kind=kind,
        first_reader_id=author_id,
        other_trust=rule.other_trust,
        parent_id=None,
    )
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.DOUBLE_READ_CREATED,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"id": read.id, "kind": kind.value, "rule": rule.position, "share": rule.share},
    )
    return read


async def create_read(
    session: AsyncSession,
    *,
    study: Study,
    kind: ReadKind,
    first_reader_id: int,
    other_trust: bool,
    parent_id: int | None,
) -> DoubleRead:
    """Add an open read of ``study`` and stage its event (which names no reader)."""
    read = DoubleRead(
        study_id=study.id,
        kind=kind.value,
        status=ReadStatus.OPEN.value,
        parent_id=parent_id,
        first_reader_id=first_reader_id,
        other_trust=other_trust,
    )
    session.add(read)
    await session.flush()
    stage(
        session,
        WorklistEvent(
            type=EventType.DOUBLE_READ_CREATED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data={"id": read.id, "kind": kind.value},
        ),
    )
    return read
