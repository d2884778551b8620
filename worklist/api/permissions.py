"""Permission checks that run before a request's input is validated.

FastAPI solves a route's dependencies in order, the router's first, calling each one as
soon as its own parameters are solved; the request's query and body are validated only
after all of them, and a dependency that raises ends the request there. So a guard
declared on a router or route (``dependencies=[...]``) answers 401, 403 or 404 whatever
the caller sent, and only a caller who may use the route learns what is wrong with their
input. The services keep their own checks (they are the rule); guards only answer first.

What a guard cannot know before the body (e.g. whether the caller holds the study's claim)
stays in the service.
"""

from __future__ import annotations

from fastapi import Depends, params

from worklist.api.deps import CurrentUser, SessionDep
from worklist.api.guard import UidPath
from worklist.enums import Role
from worklist.errors import Forbidden, NotFound
from worklist.studies import repository as studies
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import visible_study_condition


def require_roles(*roles: Role, detail: str) -> params.Depends:
    """A dependency refusing (403 ``detail``) every role but ``roles``."""

    async def check_role(user: CurrentUser) -> None:
        if user.role not in roles:
            raise Forbidden(detail)

    guard: params.Depends = Depends(check_role)
    return guard


def study_access(*, roles: tuple[Role, ...] | None = None, detail: str = "") -> params.Depends:
    """A dependency on ``{study_uid}``: 404 unless the caller sees it, then 403 for other roles.

    Visibility comes first, so a study the caller may not see is absent (404), never
    forbidden, exactly as the services answer.
    """

    async def check_study(study_uid: UidPath, user: CurrentUser, session: SessionDep) -> None:
        visible = visible_study_condition(user)
        if await studies.get_visible_study(session, study_uid=study_uid, visible=visible) is None:
            raise NotFound(STUDY_NOT_FOUND)
        if roles is not None and user.role not in roles:
            raise Forbidden(detail)

    guard: params.Depends = Depends(check_study)
    return guard
