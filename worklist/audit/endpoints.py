"""``GET /api/v1/audit``: the audit trail, for admins (all) and managers (their site)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.guard import IsoDateTime, UidQuery
from worklist.api.permissions import require_roles
from worklist.audit import service
from worklist.audit.schemas import AuditPage
from worklist.enums import Role

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

router = APIRouter(prefix="/api/v1", tags=["audit"], dependencies=[Depends(current_user)])


@router.get(
    "/audit",
    response_model=AuditPage,
    responses={403: {"description": "Only admins and managers read the audit log"}},
    dependencies=[require_roles(Role.ADMIN, Role.MANAGER, detail=service.NO_AUDIT_ACCESS)],
)
async def get_audit(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    study_uid: UidQuery = None,
    username: Annotated[
        str | None, Query(max_length=128, description="Rows by this actor (user or AE title)")
    ] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Rows at or after this time (no zone: UTC)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    """Audited reads and changes, newest first (managers: rows of their site only)."""
    return await service.list_audit(
        session=session,
        user=user,
        study_uid=study_uid,
        username=username,
        since=since,
        limit=limit,
        cursor=cursor,
        address=address,
    )
