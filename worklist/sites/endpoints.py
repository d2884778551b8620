"""``/api/v1/sites/{code}/webhook``: a trust's webhook endpoint, for its manager and admins.

Managers see and change their own site's endpoint (another site answers 404, as an
unknown one does); admins any site's; other roles are refused (403). This is where a
manager sees that a 410 disabled the endpoint, and re-enables it, or removes the URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep, current_user
from worklist.api.guard import SiteCodePath
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.outbox.targets import TargetPolicy
from worklist.sites import service
from worklist.sites.schemas import (
    RotateSecretIn,
    SecretRotationOut,
    WebhookChangeOut,
    WebhookStatusOut,
    WebhookUrlIn,
)
from worklist.sites.service import Actor


async def site_manager_access(code: str, user: CurrentUser) -> None:
    """Guard (before any body is validated): the caller manages the site in the path."""
    service.check_site_manager(user, code)


router = APIRouter(
    prefix="/api/v1/sites/{code:site}/webhook",
    tags=["sites"],
    dependencies=[Depends(current_user), Depends(site_manager_access)],
    route_class=body_limited_route(SMALL_BODY_BYTES),
)

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only managers and admins manage webhooks"},
    404: {"description": "No such site, or not the caller's site"},
}


@router.get("", response_model=WebhookStatusOut, responses=ERRORS)
async def get_webhook(
    code: SiteCodePath, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> WebhookStatusOut:
    """The endpoint's URL and state (``disabled`` after a 410), backlog and latest attempts."""
    actor = Actor.for_user(user, address)
    return await service.webhook_status(session=session, code=code, actor=actor)


@router.put(
    "",
    response_model=WebhookChangeOut,
    responses={
        **ERRORS,
        422: {
            "description": "Not an absolute http(s) URL, or a target the policy refuses "
            "(credentials, fragment, loopback/private/link-local/reserved address)"
        },
    },
)
async def put_webhook(
    code: SiteCodePath,
    body: WebhookUrlIn,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
) -> WebhookChangeOut:
    """Set the endpoint URL; the first URL of a site also issues its secret (shown once)."""
    actor = Actor.for_user(user, address)
    policy = TargetPolicy.from_settings(settings)
    return await service.set_webhook_url(
        session=session, code=code, url=body.url, actor=actor, policy=policy
    )


@router.delete("", response_model=WebhookStatusOut, responses=ERRORS)
async def delete_webhook(
    code: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> WebhookStatusOut:
    """Remove the endpoint URL: deliveries are held (``removed``) until a URL is set again."""
    actor = Actor.for_user(user, address)
    return await service.remove_webhook_url(session=session, code=code, actor=actor)


@router.post(
    "/enable",
    response_model=WebhookStatusOut,
    responses={**ERRORS, 409: {"description": "The site has no webhook URL"}},
)
async def enable_webhook(
    code: SiteCodePath, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> WebhookStatusOut:
    """Re-enable an endpoint a 410 disabled; its held deliveries are then sent."""
    actor = Actor.for_user(user, address)
    return await service.enable_webhook(session=session, code=code, actor=actor)


@router.post("/rotate-secret", response_model=SecretRotationOut, responses=ERRORS)
async def rotate_secret(
    code: SiteCodePath,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    body: RotateSecretIn | None = None,
) -> SecretRotationOut:
    """Issue a new secret (shown once); the previous one keeps signing during the overlap."""
    seconds = body.overlap_seconds if body and body.overlap_seconds is not None else None
    overlap = timedelta(
        seconds=settings.webhook_secret_overlap_seconds if seconds is None else seconds
    )
    actor = Actor.for_user(user, address)
    return await service.rotate_webhook_secret(
        session=session, code=code, overlap=overlap, actor=actor
    )
