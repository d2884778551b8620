"""Rules for registering member trusts and their DICOM nodes."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from worklist.enums import Priority
from worklist.errors import Conflict, InvalidInput
from worklist.models import DicomNode, Site
from worklist.sites import repository

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


@dataclass
class SiteRegistration:
    """What `site add` did: the site, the new node, and a webhook secret shown once."""

    site: Site
    node: DicomNode
    created_site: bool
    webhook_secret: str | None


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def validate_ae_title(ae_title: str) -> str:
    """An AE title as DICOM allows it (1-16 chars, no backslash, no control chars)."""
    stripped = ae_title.strip()
    if not _AE_TITLE.match(stripped):
        raise InvalidInput(f"invalid AE title {ae_title!r}: 1-16 printable characters, no '\\'")
    return stripped


def register_site_node(
    *,
    session: Session,
    code: str,
    name: str,
    ae_title: str,
    hosts: list[str],
    port: int | None,
    webhook_url: str | None,
    default_priority: Priority | None = None,
) -> SiteRegistration:
    """Register a site (if new) and one DICOM node of it."""
    if not _CODE.match(code):
        raise InvalidInput(f"invalid site code {code!r}: upper-case letters, digits, '-' or '_'")
    ae_title = validate_ae_title(ae_title)
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise InvalidInput(f"--host must be an IP address, got {host!r}") from exc
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"invalid port {port}")
    if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
        raise InvalidInput("--webhook-url must be an http(s) URL")
    if repository.get_node_by_ae_title(session, ae_title) is not None:
        raise Conflict(f"AE title {ae_title!r} is already registered")
    site = repository.get_site_by_code(session, code)
    secret = None
    created = site is None
    if site is None:
        secret = new_webhook_secret() if webhook_url else None
        site = repository.add_site(
            session,
            code=code,
            name=name,
            default_priority=default_priority,
            webhook_url=webhook_url,
            webhook_secret=secret,
        )
    elif webhook_url and webhook_url != site.webhook_url:
        secret = new_webhook_secret()
        site.webhook_url = webhook_url
        site.webhook_secret = secret
    node = repository.add_node(session, site=site, ae_title=ae_title, hosts=hosts, port=port)
    return SiteRegistration(site=site, node=node, created_site=created, webhook_secret=secret)
