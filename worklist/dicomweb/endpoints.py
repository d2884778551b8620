"""``/dicomweb``: QIDO-RS here, WADO-RS in ``wado`` and ``rendered``; bearer tokens.

Authentication is attached to the router (and so to the included WADO-RS routes);
visibility is the worklist's (``visible_study_condition``): what a user may not see is 404.
With ``?via={study_uid}`` every route reaches that study's priors instead (``worklist.priors``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from worklist.api.deps import SessionDep, current_user
from worklist.api.guard import UidPath
from worklist.dicomweb import media, service
from worklist.dicomweb.dicomjson import JsonDataset
from worklist.dicomweb.query import parse_query
from worklist.dicomweb.rendered import router as rendered_router
from worklist.dicomweb.responses import (
    QIDO_ALL_INSTANCES,
    QIDO_ALL_SERIES,
    QIDO_INSTANCES,
    QIDO_SERIES,
    QIDO_STUDIES,
    ROUTER_RESPONSES,
    DicomJsonResponse,
    datasets,
)
from worklist.dicomweb.service import Caller, Scope
from worklist.dicomweb.wado import NOT_VISIBLE, Accept, CallerDep
from worklist.dicomweb.wado import router as wado_router
from worklist.matching.values import Level

router = APIRouter(
    prefix="/dicomweb",
    tags=["dicomweb"],
    dependencies=[Depends(current_user)],
    responses=ROUTER_RESPONSES,
    default_response_class=DicomJsonResponse,
)
MATCHES = datasets("The matching datasets (DICOM JSON); an empty array when none match")
MATCHES_OF_VISIBLE = {**MATCHES, **NOT_VISIBLE}


def _json(found: list[JsonDataset]) -> JSONResponse:
    return DicomJsonResponse(found)


# --- QIDO-RS -------------------------------------------------------------------------


@router.get(
    "/studies",
    responses={**MATCHES, 422: {"description": "A query parameter is invalid"}},
    openapi_extra=QIDO_STUDIES,
)
async def search_studies(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: the studies the caller may see matching the query (DICOM JSON)."""
    media.require_json(accept)
    query = parse_query(request.query_params.multi_items(), level=Level.STUDY)
    return _json(await service.search_studies(session=session, caller=caller, query=query))


async def _series(
    request: Request,
    session: SessionDep,
    caller: Caller,
    accept: str | None,
    scope: Scope,
) -> JSONResponse:
    media.require_json(accept)
    query = parse_query(request.query_params.multi_items(), level=Level.SERIES)
    return _json(
        await service.search_series(session=session, caller=caller, query=query, scope=scope)
    )


async def _instances(
    request: Request,
    session: SessionDep,
    caller: Caller,
    accept: str | None,
    scope: Scope,
) -> JSONResponse:
    media.require_json(accept)
    query = parse_query(request.query_params.multi_items(), level=Level.IMAGE)
    return _json(
        await service.search_instances(session=session, caller=caller, query=query, scope=scope)
    )


@router.get("/series", responses=MATCHES, openapi_extra=QIDO_ALL_SERIES)
async def search_all_series(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: series of any visible study matching the query."""
    return await _series(request, session, caller, accept, Scope())


@router.get("/studies/{study:uid}/series", responses=MATCHES_OF_VISIBLE, openapi_extra=QIDO_SERIES)
async def search_study_series(
    study: UidPath,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: the series of one visible study matching the query."""
    return await _series(request, session, caller, accept, Scope(study_uid=study))


@router.get("/instances", responses=MATCHES, openapi_extra=QIDO_ALL_INSTANCES)
async def search_all_instances(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: instances of any visible study matching the query."""
    return await _instances(request, session, caller, accept, Scope())


@router.get(
    "/studies/{study:uid}/instances",
    responses=MATCHES_OF_VISIBLE,
    openapi_extra=QIDO_INSTANCES,
)
async def search_study_instances(
    study: UidPath,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: the instances of one visible study matching the query."""
    return await _instances(request, session, caller, accept, Scope(study_uid=study))


@router.get(
    "/studies/{study:uid}/series/{series:uid}/instances",
    responses=MATCHES_OF_VISIBLE,
    openapi_extra=QIDO_INSTANCES,
)
async def search_series_instances(
    study: UidPath,
    series: UidPath,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    accept: str | None = Accept,
) -> JSONResponse:
    """QIDO-RS: the instances of one series of a visible study."""
    scope = Scope(study_uid=study, series_uid=series)
    return await _instances(request, session, caller, accept, scope)


router.include_router(wado_router)
router.include_router(rendered_router)
