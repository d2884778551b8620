"""``/api/v1/routing/rules``: the ordered rules giving studies their subspecialty (admins;
other roles 403: the rules are no secret, only not theirs to see or change)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import Field

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.api.permissions import require_roles
from worklist.enums import Role
from worklist.routing import service
from worklist.routing.schemas import (
    MAX_PATTERN_LENGTH,
    MAX_RULES,
    RoutingChange,
    RoutingRuleIn,
    RoutingRuleOut,
    RoutingRules,
    RoutingRulesIn,
)
from worklist.sites.service import Actor

# Every rule at its longest pattern, with room for its other fields.
RULES_BODY_BYTES = json_body_bytes(MAX_RULES * (MAX_PATTERN_LENGTH + 200))

router = APIRouter(
    prefix="/api/v1/routing/rules",
    tags=["routing"],
    dependencies=[
        Depends(current_user),
        require_roles(Role.ADMIN, detail=service.ONLY_ADMINS),
    ],
    route_class=body_limited_route(RULES_BODY_BYTES),
)

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only admins manage the routing rules"},
}


@router.get("", response_model=RoutingRules, responses=ERRORS)
async def get_rules(session: SessionDep, user: CurrentUser, address: ClientAddress) -> RoutingRules:
    """The rule list in order (first match wins)."""
    rules = await service.get_rules(session, actor=Actor.for_user(user, address))
    return RoutingRules(rules=[RoutingRuleOut.of(rule) for rule in rules])


@router.put(
    "",
    response_model=RoutingChange,
    responses={
        **ERRORS,
        422: {"description": "An unknown or retired subspecialty, or an invalid pattern"},
    },
)
async def put_rules(
    body: Annotated[
        RoutingRulesIn | Annotated[list[RoutingRuleIn], Field(max_length=MAX_RULES)],
        Body(description='The ordered list, bare (as DESIGN shows it) or as `{"rules": [...]}`'),
    ],
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> RoutingChange:
    """Replace the whole list; unreported studies not routed by hand are routed again."""
    listed = body.rules if isinstance(body, RoutingRulesIn) else body
    rules, rerouted = await service.replace_rules(
        session,
        actor=Actor.for_user(user, address),
        rules=[rule.as_rule(index) for index, rule in enumerate(listed)],
    )
    return RoutingChange(rules=[RoutingRuleOut.of(rule) for rule in rules], rerouted=rerouted)
