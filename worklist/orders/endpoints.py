"""``/api/v1/fhir/ServiceRequest``: orders from a trust's RIS as FHIR R4 ServiceRequests."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep, current_user
from worklist.orders import intake
from worklist.orders.fhir import RESOURCE_PATH, resource_location
from worklist.orders.outcome import MalformedResource, UnsupportedMediaType
from worklist.reports.fhir import FHIR_JSON

JSON_MEDIA = "application/json"
# What a FHIR client may send: the R4 media type, plain JSON, and the DSTU2 spelling.
ACCEPTED_MEDIA = frozenset({FHIR_JSON, JSON_MEDIA, "application/json+fhir"})
NOT_FHIR_JSON = "the body must be FHIR JSON (Content-Type: application/fhir+json)"
NOT_JSON = "the body is not valid UTF-8 JSON"

OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: one error issue saying what was refused",
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["resourceType", "issue"],
}
_RESOURCE = {"schema": {"type": "object"}}
_OUTCOME = {"schema": OPERATION_OUTCOME_SCHEMA}
# The API's plumbing (token, body limit, input guard) answers ``{"detail"}`` as JSON.
_PLUMBING = {"schema": {"$ref": "#/components/schemas/Error"}}


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: _OUTCOME, JSON_MEDIA: _PLUMBING}}


FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: _refusal("Not an order client or alert client, or another site's order")
}
POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An existing order changed: the order as stored",
        "content": {FHIR_JSON: _RESOURCE},
    },
    201: {"description": "A new order: the order as stored", "content": {FHIR_JSON: _RESOURCE}},
    400: _refusal("Not JSON, not a ServiceRequest, or an element of the wrong type"),
    **FORBIDDEN,
    415: _refusal("The body is not FHIR JSON"),
    422: _refusal(
        "No accession number, no patient, an invalid NHS number, an unknown status or priority"
    ),
}
POST_BODY = {
    "requestBody": {
        "required": True,
        "description": "An R4 ServiceRequest (docs/fhir-orders.md)",
        "content": {FHIR_JSON: _RESOURCE, JSON_MEDIA: _RESOURCE},
    }
}


async def order_client(user: CurrentUser) -> None:
    """Guard (before the body is read): only a trust's order or alert client posts orders."""
    intake.caller_site(user)


router = APIRouter(
    prefix=RESOURCE_PATH,
    tags=["orders"],
    dependencies=[Depends(current_user), Depends(order_client)],
)


def _fhir_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in ACCEPTED_MEDIA:
        raise UnsupportedMediaType(NOT_FHIR_JSON)


@router.post(
    "",
    status_code=201,
    response_class=JSONResponse,
    responses=POST_RESPONSES,
    openapi_extra=POST_BODY,
)
async def post_service_request(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
) -> JSONResponse:
    """Place, change or cancel (``status: revoked``) the caller's site's order for an
    accession number; 201 with the new order, 200 with a changed one."""
    _fhir_json(request)
    try:
        data = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedResource(NOT_JSON) from None
    submitted = await intake.submit_service_request(
        session=session,
        user=user,
        data=data,
        turnaround_targets=settings.turnaround_targets,
        address=address,
    )
    return JSONResponse(
        submitted.resource,
        status_code=201 if submitted.created else 200,
        media_type=FHIR_JSON,
        headers={"Location": resource_location(submitted.order_id)},
    )


@router.get(
    "/{order_id}",
    response_class=JSONResponse,
    responses={
        200: {"description": "The order as stored", "content": {FHIR_JSON: _RESOURCE}},
        **FORBIDDEN,
        404: _refusal("No such order at the caller's site"),
    },
)
async def get_service_request(
    order_id: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> JSONResponse:
    """One of the caller's site's orders as a ServiceRequest (the read is audited)."""
    resource = await intake.read_service_request(
        session=session, user=user, order_id=order_id, address=address
    )
    return JSONResponse(resource, media_type=FHIR_JSON)
