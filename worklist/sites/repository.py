"""SQL for sites and DICOM nodes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from worklist.enums import Priority
from worklist.models import DicomNode, Site


def get_site_by_code(session: Session, code: str) -> Site | None:
    """The site with this code, or None."""
    return session.scalar(select(Site).where(Site.code == code))


def get_node_by_ae_title(session: Session, ae_title: str) -> DicomNode | None:
    """The DICOM node with this AE title, or None."""
    return session.scalar(select(DicomNode).where(DicomNode.ae_title == ae_title))


def list_sites(session: Session) -> list[Site]:
    """Every site with its nodes, by code."""
    return list(session.scalars(select(Site).options(selectinload(Site.nodes)).order_by(Site.code)))


def add_site(
    session: Session,
    *,
    code: str,
    name: str,
    default_priority: Priority | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> Site:
    """Insert a site."""
    site = Site(
        code=code,
        name=name,
        default_priority=default_priority,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    session.add(site)
    session.flush()
    return site


def add_node(
    session: Session, *, site: Site, ae_title: str, hosts: list[str], port: int | None
) -> DicomNode:
    """Insert a DICOM node of ``site``."""
    node = DicomNode(site_id=site.id, ae_title=ae_title, hosts=hosts, port=port)
    session.add(node)
    session.flush()
    return node
