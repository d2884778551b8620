"""``GET /api/v1/stats/extract.csv``: the monthly per-examination extract, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    SessionDep,
    SessionMakerDep,
    current_user,
)
from worklist.api.permissions import require_roles
from worklist.audit.repository import ActorKind
from worklist.enums import Role
from worklist.stats import extract

CSV_MEDIA = "text/csv; charset=utf-8"

# The role guard answers before the month is validated (worklist.api.permissions).
router = APIRouter(
    prefix="/api/v1/stats",
    tags=["stats"],
    dependencies=[
        Depends(current_user),
        require_roles(Role.ADMIN, Role.MANAGER, detail=extract.NOT_FOR_ROLE),
    ],
)


async def _stream(
    sessionmaker: async_sessionmaker[AsyncSession], plan: extract.ExtractPlan
) -> AsyncIterator[str]:
    # Its own session: the request's committed (with the audit row) before the response
    # began, and a server-side cursor lives only inside a transaction.
    async with sessionmaker() as session, session.begin():
        async for chunk in extract.csv_chunks(session, plan=plan):
            yield chunk


@router.get(
    "/extract.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per examination, header first (docs/did-extract.md)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        403: {"description": "Not a manager or an admin"},
        422: {"description": "month is not YYYY-MM"},
    },
)
async def get_extract(
    session: SessionDep,
    sessionmaker: SessionMakerDep,
    user: CurrentUser,
    address: ClientAddress,
    month: Annotated[
        str,
        Query(
            pattern=extract.MONTH_PATTERN,
            description="YYYY-MM: examinations whose test date (local) falls in it",
        ),
    ],
) -> StreamingResponse:
    """The month's Diagnostic Imaging Dataset items: all sites for admins, a manager's own."""
    parsed = extract.Month.parse(month)
    plan = await extract.begin_extract(
        session,
        actor=user.username,
        actor_kind=ActorKind.USER,
        month=parsed,
        site_ids=extract.extract_sites(user),
        address=address,
    )
    return StreamingResponse(
        _stream(sessionmaker, plan),
        media_type=CSV_MEDIA,
        headers={
            "Content-Disposition": f'attachment; filename="extract-{parsed}.csv"',
            "X-Extract-Rows": str(plan.rows),
        },
    )
