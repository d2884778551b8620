"""Rules of the vocabulary: admins (and the CLI operator) add codes, rename and retire them.

A code is never deleted: users, studies and requests that name it keep a valid code. A
retired (inactive) code can no longer be given to a user or a routing rule; it cannot be
retired while a routing rule still gives it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction, Role
from worklist.errors import Conflict, Forbidden, InvalidInput, NotFound
from worklist.models import Subspecialty, User
from worklist.sites.service import Actor
from worklist.subspecialties import repository
from worklist.subspecialties.schemas import SubspecialtyIn, SubspecialtyPatch

ONLY_ADMINS = "only admins manage the subspecialty vocabulary"
UNKNOWN_CODE = "no subspecialty with code {code!r}"
IN_USE = "subspecialty {code!r} is given by routing rule(s): change the rules first"


def check_admin(actor: Actor, detail: str = ONLY_ADMINS) -> None:
    """403 (``detail``) unless the actor is an admin or the CLI operator."""
    if actor.user is not None and actor.user.role is not Role.ADMIN:
        raise Forbidden(detail)


async def list_vocabulary(session: AsyncSession, *, user: User) -> Sequence[Subspecialty]:
    """The codes a user may pick from; admins see the retired ones too."""
    return await repository.list_subspecialties(session, include_inactive=user.role is Role.ADMIN)


async def check_codes(session: AsyncSession, codes: Iterable[str]) -> list[str]:
    """Active codes of the vocabulary, de-duplicated in the order given (422 otherwise)."""
    ordered = list(dict.fromkeys(codes))
    known = await repository.active_codes(session, ordered)
    unknown = [code for code in ordered if code not in known]
    if unknown:
        raise InvalidInput(f"unknown subspecialty {unknown[0]!r} (see GET /api/v1/subspecialties)")
    return ordered


def checked_new(*, code: str, name: str) -> SubspecialtyIn:
    """A new code and name as the API checks them (InvalidInput otherwise), for the CLI."""
    try:
        return SubspecialtyIn(code=code, name=name)
    except ValidationError as exc:
        field = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}") from None


async def add(session: AsyncSession, *, actor: Actor, code: str, name: str) -> Subspecialty:
    """Add a code to the vocabulary (409 if it exists, active or not); audited."""
    check_admin(actor)
    added = await repository.add_subspecialty(session, code=code, name=name)
    if added is None:
        raise Conflict(f"subspecialty {code!r} already exists")
    _audit(session, actor, AuditAction.SUBSPECIALTY_ADDED, {"code": code, "name": name})
    return added


async def change(
    session: AsyncSession, *, actor: Actor, code: str, patch: SubspecialtyPatch
) -> Subspecialty:
    """Rename, retire or revive a code; audited when something changed."""
    check_admin(actor)
    row = await repository.get_subspecialty(session, code, lock=True)
    if row is None:
        raise NotFound(UNKNOWN_CODE.format(code=code))
    if "active" in patch.model_fields_set and patch.active is None:
        raise InvalidInput("active cannot be null")
    changes: dict[str, Any] = {}
    if patch.name is not None and patch.name != row.name:
        changes["name"] = {"from": row.name, "to": patch.name}
        row.name = patch.name
    if patch.active is not None and patch.active != row.active:
        if not patch.active and await repository.used_by_rules(session, code):
            raise Conflict(IN_USE.format(code=code))
        changes["active"] = {"from": row.active, "to": patch.active}
        row.active = patch.active
    if changes:
        await session.flush()
        _audit(session, actor, AuditAction.SUBSPECIALTY_CHANGED, {"code": code, **changes})
    return row


def _audit(
    session: AsyncSession, actor: Actor, action: AuditAction, detail: dict[str, Any]
) -> None:
    audit.record(
        session,
        actor=actor.name,
        actor_kind=actor.kind,
        action=action,
        address=actor.address,
        detail=detail,
    )
