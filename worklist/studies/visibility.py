"""Who may see which studies: the one place the rule lives.

radiologist: the sites they hold reporting privileges at; manager: their site;
admin: every site; alert_client: none (they only see their site's alerts); order_client:
none (they only place their site's orders). A study
outside the rule is treated as absent (404), never as forbidden. A radiologist may also
read (never report) a study a second opinion or a double read grants them
(``readable_study_condition``). The one query that fetches
(or locks) a study by UID under a rule is ``worklist.studies.repository.get_visible_study``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Integer, any_, bindparam, false, or_, true
from sqlalchemy.dialects.postgresql import ARRAY

from worklist.enums import Role
from worklist.errors import Forbidden
from worklist.models import Study, User
from worklist.studies import grants
from worklist.users.repository import Account

NO_WORKLIST_ACCESS = "this account has no access to the worklist"


def visible_site_ids(role: Role, site_ids: Iterable[int]) -> tuple[int, ...] | None:
    """The sites whose studies an account of ``role`` holding privileges at ``site_ids``
    sees, in id order; None: every site (an admin); empty: none."""
    if role is Role.ADMIN:
        return None
    if role in (Role.RADIOLOGIST, Role.MANAGER):
        return tuple(sorted(site_ids))
    return ()


def site_ids_condition(
    site_ids: tuple[int, ...] | None, *, name: str | None = None
) -> ColumnElement[bool]:
    """The condition on ``Study`` of ``visible_site_ids``' answer; ``name`` names the
    array's bind parameter (for a statement compiled once and run with its own values)."""
    if site_ids is None:
        return true()
    if not site_ids:
        return false()
    # An array, not an IN-list: one statement text however many sites, so it stays prepared.
    return Study.site_id == any_(bindparam(name, list(site_ids), type_=ARRAY(Integer)))


# Statements compiled once per shape (the page, ``next``) bind the visible sites by name.
VISIBLE_SITE_IDS = "wl_visible_site_ids"


def visibility_shape(site_ids: tuple[int, ...] | None) -> str:
    """What of ``visible_site_ids``' answer decides a statement's text: "all", "sites" or
    "none" (the ids themselves are a parameter, ``visibility_params``)."""
    return "all" if site_ids is None else "sites" if site_ids else "none"


def shaped_visibility_condition(shape: str) -> ColumnElement[bool]:
    """``site_ids_condition`` for a statement of ``visibility_shape`` ``shape``, its ids
    bound by name (``VISIBLE_SITE_IDS``)."""
    site_ids = None if shape == "all" else (0,) if shape == "sites" else ()
    return site_ids_condition(site_ids, name=VISIBLE_SITE_IDS)


def visibility_params(site_ids: tuple[int, ...] | None) -> dict[str, Any]:
    """The parameters of ``shaped_visibility_condition`` for ``site_ids``."""
    return {VISIBLE_SITE_IDS: list(site_ids)} if site_ids else {}


def visible_study_condition(user: User) -> ColumnElement[bool]:
    """A SQL condition on ``Study`` true exactly for the studies ``user`` may see."""
    return site_ids_condition(visible_site_ids(user.role, (site.id for site in user.sites)))


def readable_study_condition(user: User) -> ColumnElement[bool]:
    """Studies ``user`` may read: those they see, plus those a grant gives them.

    For reads of one study (its detail, images, report, and its priors through it), never
    for the worklist, claims, triage, reports written or alerts raised: a grant opens a
    study to read, not to report (``worklist.studies.grants``).
    """
    visible = visible_study_condition(user)
    granted = grants.granted_condition(user) if user.role is Role.RADIOLOGIST else None
    return visible if granted is None else or_(visible, granted)


def result_visible_condition(user: User) -> ColumnElement[bool]:
    """Studies whose signed result ``user`` may read: the worklist rule, plus alert clients.

    An alert client (the trust's results system) has no worklist, but may pull the
    results of its own site's studies.
    """
    visible = visible_study_condition(user)
    if user.role is Role.ALERT_CLIENT:
        site_ids = sorted(site.id for site in user.sites)
        return or_(visible, Study.site_id.in_(site_ids)) if site_ids else visible
    return visible


def require_worklist_access(user: User | Account) -> None:
    """Raise Forbidden for roles that have no worklist at all (alert and order clients)."""
    if user.role in (Role.ALERT_CLIENT, Role.ORDER_CLIENT):
        raise Forbidden(NO_WORKLIST_ACCESS)
