"""Who may see, acknowledge and stream which alerts: the one place the rules live.

alert_client and manager: their site's alerts (they see and acknowledge them);
radiologist: the alerts they raised (they follow them); admin: every alert.
An alert outside the rule is treated as absent (404), never as forbidden.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from worklist.enums import Role
from worklist.errors import Forbidden
from worklist.models import Alert, User

STREAM_ROLES = (Role.ALERT_CLIENT, Role.MANAGER, Role.ADMIN)
ACK_ROLES = (Role.ALERT_CLIENT, Role.MANAGER)
NO_ALERT_STREAM = "the alert stream is for a trust's alert clients and managers, and admins"
NOT_SITE_RECEIVER = "only an alert client or manager of the alert's trust may acknowledge it"


def _site_ids(user: User) -> list[int]:
    return sorted(site.id for site in user.sites)


def visible_alert_condition(user: User) -> ColumnElement[bool]:
    """A SQL condition on ``Alert`` true exactly for the alerts ``user`` may see."""
    if user.role is Role.ADMIN:
        return true()
    if user.role in ACK_ROLES:
        site_ids = _site_ids(user)
        return Alert.site_id.in_(site_ids) if site_ids else false()
    if user.role is Role.RADIOLOGIST:
        return Alert.raised_by_id == user.id
    return false()


def require_acknowledger(user: User, alert: Alert) -> None:
    """Raise Forbidden unless ``user`` receives alerts for the alert's site."""
    if user.role not in ACK_ROLES or alert.site_id not in _site_ids(user):
        raise Forbidden(NOT_SITE_RECEIVER)


def stream_sites(user: User) -> frozenset[int] | None:
    """The sites whose alert events ``user`` may stream (None: every site); Forbidden if none."""
    if user.role not in STREAM_ROLES:
        raise Forbidden(NO_ALERT_STREAM)
    if user.role is Role.ADMIN:
        return None
    return frozenset(_site_ids(user))
