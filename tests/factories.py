"""Row factories for fixtures: sites, nodes, grants, users, outbox messages. Never a commit.

The domain is async, but fixtures build their world in one synchronous transaction
(sites, users, patients and studies together), so these insert the rows the registering
services would, without their checks. Tests of the checks go through the API or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from worklist.enums import OutboxEventType, Priority, Role
from worklist.models import DicomNode, NodeGrant, OutboxMessage, Site, User
from worklist.outbox import new_message


def new_site(
    session: Session,
    code: str,
    *,
    name: str | None = None,
    ae_title: str | None = None,
    hosts: Sequence[str] = (),
    port: int | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    default_priority: Priority | None = None,
) -> Site:
    """A trust with a DICOM node (``{code}_PACS`` unless named), as `site add` registers it.

    As the command does, a code already registered gets one more node (the other
    arguments then leave the site as it is).
    """
    site = session.scalars(select(Site).where(Site.code == code)).one_or_none()
    if site is None:
        site = Site(
            code=code,
            name=name or f"{code.title()} Trust",
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            default_priority=default_priority,
        )
        session.add(site)
        session.flush()
    new_node(session, site, ae_title=ae_title or f"{code}_PACS", hosts=hosts, port=port)
    return site


def new_node(
    session: Session, site: Site, *, ae_title: str, hosts: Sequence[str] = (), port: int | None
) -> DicomNode:
    """Another DICOM node of ``site``."""
    node = DicomNode(site_id=site.id, ae_title=ae_title, hosts=list(hosts), port=port)
    session.add(node)
    session.flush()
    return node


def new_grant(session: Session, *, ae_title: str, site_code: str) -> NodeGrant:
    """Let node ``ae_title`` query and retrieve ``site_code``'s studies (`node grant`)."""
    node = session.scalars(select(DicomNode).where(DicomNode.ae_title == ae_title)).one()
    site = session.scalars(select(Site).where(Site.code == site_code)).one()
    grant = NodeGrant(node_id=node.id, site_id=site.id, granted_by="test")
    session.add(grant)
    session.flush()
    return grant


def new_user(
    session: Session,
    username: str,
    role: Role,
    *site_codes: str,
    password_hash: str,
    home_site: Site | None = None,
) -> User:
    """A user with privileges at ``site_codes`` (loaded, so the user is usable detached)."""
    sites = (
        list(session.scalars(select(Site).where(Site.code.in_(site_codes)))) if site_codes else []
    )
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        sites=sites,
        home_site=home_site,
        subspecialties=[],
    )
    session.add(user)
    session.flush()
    session.refresh(user, ["active", "token_version"])
    return user


def load_user(session: Session, username: str) -> User | None:
    """The committed user with this username (sites and home site loaded), for assertions."""
    stmt = (
        select(User)
        .where(User.username == username)
        .options(selectinload(User.sites), joinedload(User.home_site))
    )
    return session.scalar(stmt)


def add_outbox_message(
    session: Session,
    site: Site,
    *,
    event_type: OutboxEventType = OutboxEventType.ALERT_RAISED,
    data: Mapping[str, Any] | None = None,
    sse: bool = False,
) -> OutboxMessage:
    """A message for ``site`` with the deliveries ``outbox.enqueue`` would give it."""
    message, deliveries = new_message(site=site, event_type=event_type, data=data or {}, sse=sse)
    session.add_all([message, *deliveries])
    return message
