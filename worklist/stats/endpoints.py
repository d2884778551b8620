"""``/api/v1/stats/...``: the network's figures for managers and admins (a radiologist's
own workload for them); docs/stats.md says what each figure means."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep, current_user
from worklist.api.guard import IsoDate
from worklist.stats import service
from worklist.stats.schemas import (
    Alerts,
    Backlog,
    Breaches,
    Demand,
    Flows,
    Grouping,
    Turnaround,
    Workload,
)
from worklist.stats.scope import Period

router = APIRouter(
    prefix="/api/v1/stats", tags=["network performance"], dependencies=[Depends(current_user)]
)

FOR_MANAGERS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only managers (their sites) and admins see network figures"},
    422: {"description": "A date that is not YYYY-MM-DD, or since after until"},
}
MAX_BREACHES = 1000


def period(
    since: Annotated[IsoDate | None, Query(description="From this UTC day (included)")] = None,
    until: Annotated[IsoDate | None, Query(description="To this UTC day (included)")] = None,
) -> Period:
    """The ``since``/``until`` every figure takes."""
    return Period(since, until)


PeriodDep = Annotated[Period, Depends(period)]


@router.get("/turnaround", response_model=Turnaround, responses=FOR_MANAGERS)
async def get_turnaround(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    scope: PeriodDep,
    group_by: Annotated[
        list[Grouping] | None, Query(description="Dimensions to group by (repeatable)")
    ] = None,
) -> Turnaround:
    """Examination to first final report: percentiles, share within target, over 28 days."""
    return await service.turnaround(
        session=session,
        user=user,
        settings=settings,
        period=scope,
        groupings=group_by or [],
        address=address,
    )


@router.get("/breaches", response_model=Breaches, responses=FOR_MANAGERS)
async def get_breaches(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    scope: PeriodDep,
    limit: Annotated[int, Query(ge=1, le=MAX_BREACHES)] = 200,
) -> Breaches:
    """Unreported studies examined more than 28 days ago (WorklistItems), oldest first."""
    return await service.breaches(
        session=session, user=user, period=scope, limit=limit, address=address
    )


@router.get("/backlog", response_model=Backlog, responses=FOR_MANAGERS)
async def get_backlog(
    session: SessionDep, user: CurrentUser, address: ClientAddress, scope: PeriodDep
) -> Backlog:
    """Unreported studies now by site, priority and age band; due within 24 h; overdue."""
    return await service.backlog(session=session, user=user, period=scope, address=address)


@router.get("/demand", response_model=Demand, responses=FOR_MANAGERS)
async def get_demand(
    session: SessionDep, user: CurrentUser, address: ClientAddress, scope: PeriodDep
) -> Demand:
    """Arrivals and final reports per day, site and modality; days to clear the backlog."""
    return await service.demand(session=session, user=user, period=scope, address=address)


@router.get("/flows", response_model=Flows, responses=FOR_MANAGERS)
async def get_flows(
    session: SessionDep, user: CurrentUser, address: ClientAddress, scope: PeriodDep
) -> Flows:
    """Reports, second opinions and double reads per month, origin trust x reporting trust."""
    return await service.flows(session=session, user=user, period=scope, address=address)


@router.get("/alerts", response_model=Alerts, responses=FOR_MANAGERS)
async def get_alerts(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    scope: PeriodDep,
) -> Alerts:
    """Alert acknowledgement within deadline, time to acknowledge, escalations, breaches."""
    return await service.alerts(
        session=session, user=user, settings=settings, period=scope, address=address
    )


@router.get(
    "/workload",
    response_model=Workload,
    responses={403: {"description": "Alert and order clients have no workload"}},
)
async def get_workload(
    session: SessionDep, user: CurrentUser, address: ClientAddress, scope: PeriodDep
) -> Workload:
    """Final reports per radiologist per week (a radiologist: their own only)."""
    return await service.workload(session=session, user=user, period=scope, address=address)
