"""Rules for member trusts: registering them, their DICOM nodes and RIS, managing their webhook.

The webhook functions serve both the API (a manager of the site, or an admin) and the
CLI (an operator, network-wide); ``Actor`` says who acts and with what authority. They
are async, like the rest of the domain; the CLI runs them with ``run_in_transaction``.
A secret leaves this module only in the one response that issues it: audit rows
record that a secret was issued or rotated, never the secret.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.audit.repository import ActorKind
from worklist.enums import AuditAction, DeliveryChannel, Priority, Role
from worklist.errors import Conflict, Forbidden, InvalidInput, NotFound
from worklist.models import DicomNode, Site, User
from worklist.outbox import stage_wakeup
from worklist.outbox.sender import shown_error
from worklist.outbox.targets import PUBLIC_ONLY, TargetPolicy
from worklist.sites import repository
from worklist.sites.schemas import (
    MAX_OVERLAP_SECONDS,
    RECENT_ATTEMPTS,
    FailedDeliveryOut,
    RisStatusOut,
    SecretRotationOut,
    SiteRef,
    WebhookAttemptOut,
    WebhookChangeOut,
    WebhookState,
    WebhookStatusOut,
)

SITE_NOT_FOUND = "site not found"
NOT_SITE_MANAGER = "only the site's managers and network admins manage its webhook"
NO_WEBHOOK_URL = "the site has no webhook URL: set one first"

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
RIS_TARGET_INCOMPLETE = "--ris-host and --ris-port go together: where the RIS accepts ORU^R01"


@dataclass
class SiteRegistration:
    """What `site add` did: the site, its node (None without an AE title; not new when
    ``created_node`` is False: the same AE title again), and a webhook secret shown once."""

    site: Site
    node: DicomNode | None
    created_site: bool
    webhook_secret: str | None
    created_node: bool = True


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def validate_ae_title(ae_title: str) -> str:
    """An AE title as DICOM allows it (1-16 chars, no backslash, no control chars)."""
    stripped = ae_title.strip()
    if not _AE_TITLE.match(stripped):
        raise InvalidInput(f"invalid AE title {ae_title!r}: 1-16 printable characters, no '\\'")
    return stripped


def validate_ris_target(host: str | None, port: int | None) -> tuple[str, int] | None:
    """The RIS's MLLP listener (a host name or IP address, and a port), or None if not given.

    Not judged by the webhook target policy: a trust's RIS is normally on its private
    network, and only an operator sets it.
    """
    if host is None and port is None:
        return None
    if host is None or port is None:
        raise InvalidInput(RIS_TARGET_INCOMPLETE)
    host = host.strip()
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOSTNAME.match(host):
            raise InvalidInput(
                f"--ris-host must be a host name or IP address, got {host!r}"
            ) from None
    if not 0 < port < 65536:
        raise InvalidInput(f"invalid RIS port {port}")
    return host, port


def _existing_node(
    site: Site | None, node: DicomNode | None, hosts: list[str], port: int | None
) -> bool:
    """Whether ``node`` is the site's own node registered as asked: `site add` run again
    (e.g. to set the RIS); anything else under its AE title is a conflict."""
    if node is None:
        return False
    same = site is not None and node.site_id == site.id
    if (
        not same
        or (hosts and sorted(hosts) != sorted(node.hosts))
        or (port is not None and port != node.port)
    ):
        raise Conflict(f"AE title {node.ae_title!r} is already registered")
    return True


async def register_site_node(
    *,
    session: AsyncSession,
    code: str,
    name: str | None,
    ae_title: str | None,
    hosts: list[str],
    port: int | None,
    webhook_url: str | None,
    policy: TargetPolicy = PUBLIC_ONLY,
    default_priority: Priority | None = None,
    ris_host: str | None = None,
    ris_port: int | None = None,
) -> SiteRegistration:
    """Register a site (if new) and one DICOM node of it; ``policy`` judges the webhook URL.

    Without ``ae_title`` no node is added (a site whose RIS alone is being registered). A
    RIS target (``ris_host``/``ris_port``) is set on the site, new or not. Running it
    again with a node the site already has (same hosts and port, or none given) adds no
    node and applies the site's options.
    """
    if not _CODE.match(code):
        raise InvalidInput(f"invalid site code {code!r}: upper-case letters, digits, '-' or '_'")
    ae_title = validate_ae_title(ae_title) if ae_title is not None else None
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise InvalidInput(f"--host must be an IP address, got {host!r}") from exc
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"invalid port {port}")
    if webhook_url is not None:
        webhook_url = policy.check_url(webhook_url)
    ris = validate_ris_target(ris_host, ris_port)
    existing = (
        await repository.get_node_by_ae_title(session, ae_title) if ae_title is not None else None
    )
    site = await repository.get_site_by_code(session, code)
    known_node = _existing_node(site, existing, hosts, port)
    secret = None
    created = site is None
    if site is None:
        if not name:
            raise InvalidInput(f"site {code} is not registered yet: give its --name")
        secret = new_webhook_secret() if webhook_url else None
        site = await repository.add_site(
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
        # A new endpoint: what a 410 or a removal held goes to it.
        site.webhook_disabled_at = None
        site.webhook_disabled_reason = None
        _wake_dispatchers(session, site)
    if ris is not None and ris != (site.ris_host, site.ris_port):
        site.ris_host, site.ris_port = ris
        await session.flush()
        _wake_dispatchers(session, site)  # held results go to the new target at once
    if existing is not None and known_node:
        return SiteRegistration(
            site=site, node=existing, created_site=False, webhook_secret=secret, created_node=False
        )
    node = None
    if ae_title is not None:
        node = await repository.add_node(
            session, site=site, ae_title=ae_title, hosts=hosts, port=port
        )
    return SiteRegistration(
        site=site,
        node=node,
        created_site=created,
        webhook_secret=secret,
        created_node=node is not None,
    )


@dataclass(frozen=True)
class Actor:
    """Who changes a site's webhook: an API user, or an operator at the CLI (``user`` None)."""

    name: str
    kind: ActorKind
    address: str | None = None
    user: User | None = None

    @classmethod
    def for_user(cls, user: User, address: str | None) -> Actor:
        """The actor for an authenticated API caller."""
        return cls(name=user.username, kind=ActorKind.USER, address=address, user=user)


def check_site_manager(user: User, code: str) -> None:
    """403 for roles that manage no site; 404 for a manager asking about another site."""
    if user.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(NOT_SITE_MANAGER)
    if user.role is Role.MANAGER and code not in {s.code for s in user.sites}:
        raise NotFound(SITE_NOT_FOUND)


async def _managed_site(session: AsyncSession, *, code: str, actor: Actor, lock: bool) -> Site:
    """The site ``actor`` may manage: admins and operators any, managers their own.

    Other roles learn nothing about sites (403); a manager asking about another trust
    is told it does not exist (404), as for studies.
    """
    if actor.user is not None:
        check_site_manager(actor.user, code)
    site = await repository.get_site_by_code(session, code, lock=lock)
    if site is None:
        raise NotFound(SITE_NOT_FOUND)
    return site


def _redacted(url: str | None) -> str | None:
    """The URL without credentials, query or fragment (they may carry tokens)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _wake_dispatchers(session: AsyncSession, site: Site) -> None:
    # Held or redirected deliveries should go out at once, not at the next poll: the same
    # post-commit wake-up ``outbox.enqueue`` stages for new messages.
    stage_wakeup(session, site.id)


def _audit(
    session: AsyncSession, actor: Actor, site: Site, action: AuditAction, detail: dict[str, object]
) -> None:
    audit.record(
        session,
        actor=actor.name,
        actor_kind=actor.kind,
        action=action,
        site_id=site.id,
        address=actor.address,
        detail={"code": site.code, **detail},
    )


async def _status(session: AsyncSession, site: Site) -> WebhookStatusOut:
    now = datetime.now(UTC)
    if not site.webhook_url:
        removed = site.webhook_disabled_at is not None
        state = WebhookState.REMOVED if removed else WebhookState.NOT_CONFIGURED
    elif site.webhook_disabled_at is not None:
        state = WebhookState.DISABLED
    else:
        state = WebhookState.ACTIVE
    rollover = site.webhook_previous_secret_until
    pending, oldest = await repository.pending_webhook_deliveries(session, site.id)
    attempts = await repository.recent_attempts(session, site.id, RECENT_ATTEMPTS)
    ris = await _ris_status(session, site)
    return WebhookStatusOut(
        site=SiteRef(code=site.code, name=site.name),
        url=site.webhook_url,
        status=state,
        secret_configured=site.webhook_secret is not None,
        disabled_at=site.webhook_disabled_at,
        disabled_reason=site.webhook_disabled_reason,
        secret_rollover_until=(
            rollover if rollover and rollover > now and site.webhook_previous_secret else None
        ),
        pending_deliveries=pending,
        oldest_pending_at=oldest,
        recent_attempts=[
            WebhookAttemptOut(**{**vars(a), "error": shown_error(a.status_code, a.error)})
            for a in attempts
        ],
        ris=ris,
    )


async def _ris_status(session: AsyncSession, site: Site) -> RisStatusOut:
    hl7 = DeliveryChannel.HL7
    pending, oldest = await repository.pending_webhook_deliveries(session, site.id, hl7)
    failed, failures = await repository.failed_deliveries(session, site.id, hl7, RECENT_ATTEMPTS)
    attempts = await repository.recent_attempts(session, site.id, RECENT_ATTEMPTS, hl7)
    return RisStatusOut(
        host=site.ris_host,
        port=site.ris_port,
        pending_deliveries=pending,
        oldest_pending_at=oldest,
        failed_deliveries=failed,
        recent_failures=[FailedDeliveryOut(**vars(f)) for f in failures],
        recent_attempts=[WebhookAttemptOut(**vars(a)) for a in attempts],
    )


async def webhook_status(*, session: AsyncSession, code: str, actor: Actor) -> WebhookStatusOut:
    """The site's webhook: URL, active/disabled (a 410 and when), backlog, latest attempts."""
    return await _status(session, await _managed_site(session, code=code, actor=actor, lock=False))


async def set_webhook_url(
    *, session: AsyncSession, code: str, url: str, actor: Actor, policy: TargetPolicy
) -> WebhookChangeOut:
    """Point the site's webhook at ``url``; a secret is issued (returned once) if it had none.

    ``policy`` refuses targets that are not public (TargetRefused, 422). A new URL is a
    new endpoint: a disabled state left by the old one's 410, or by a removal, is
    cleared, and pending (held) deliveries go to the new URL.
    """
    site = await _managed_site(session, code=code, actor=actor, lock=True)
    url = policy.check_url(url)
    secret = None
    if url != site.webhook_url:
        previous = site.webhook_url
        re_enabled = site.webhook_disabled_at is not None
        site.webhook_url = url
        site.webhook_disabled_at = None
        site.webhook_disabled_reason = None
        if site.webhook_secret is None:
            secret = new_webhook_secret()
            site.webhook_secret = secret
        await session.flush()
        _audit(
            session,
            actor,
            site,
            AuditAction.WEBHOOK_CHANGED,
            {
                "url": _redacted(url),
                "previous_url": _redacted(previous),
                "secret_issued": secret is not None,
                "re_enabled": re_enabled,
            },
        )
        _wake_dispatchers(session, site)
    return WebhookChangeOut(**(await _status(session, site)).model_dump(), secret=secret)


async def remove_webhook_url(*, session: AsyncSession, code: str, actor: Actor) -> WebhookStatusOut:
    """Stop sending to the site's webhook URL (idempotent); its deliveries are held, not lost.

    Like a 410, removal holds the pending deliveries and those of new events until a URL
    is set again; the secret is kept for the next URL.
    """
    site = await _managed_site(session, code=code, actor=actor, lock=True)
    if site.webhook_url:
        previous = site.webhook_url
        site.webhook_url = None
        site.webhook_disabled_at = datetime.now(UTC)
        site.webhook_disabled_reason = f"webhook URL removed by {actor.name}"
        await session.flush()
        _audit(session, actor, site, AuditAction.WEBHOOK_REMOVED, {"url": _redacted(previous)})
    return await _status(session, site)


async def enable_webhook(*, session: AsyncSession, code: str, actor: Actor) -> WebhookStatusOut:
    """Re-enable an endpoint disabled by a 410: its held deliveries go out (idempotent)."""
    site = await _managed_site(session, code=code, actor=actor, lock=True)
    if not site.webhook_url:
        raise Conflict(NO_WEBHOOK_URL)
    if site.webhook_disabled_at is not None:
        disabled_at, reason = site.webhook_disabled_at, site.webhook_disabled_reason
        site.webhook_disabled_at = None
        site.webhook_disabled_reason = None
        await session.flush()
        _audit(
            session,
            actor,
            site,
            AuditAction.WEBHOOK_ENABLED,
            {"disabled_at": disabled_at.isoformat(), "disabled_reason": reason},
        )
        _wake_dispatchers(session, site)
    return await _status(session, site)


async def rotate_webhook_secret(
    *, session: AsyncSession, code: str, overlap: timedelta, actor: Actor
) -> SecretRotationOut:
    """Issue a new secret (returned once); the current one keeps signing for ``overlap``.

    Only two secrets are ever valid: rotating again during a rollover retires the
    oldest at once. With no overlap the current secret is retired immediately.
    """
    seconds = overlap.total_seconds()
    if not 0 <= seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidInput(f"the overlap must be between 0 and {MAX_OVERLAP_SECONDS} seconds")
    site = await _managed_site(session, code=code, actor=actor, lock=True)
    until = None
    if site.webhook_secret is not None and seconds > 0:
        until = datetime.now(UTC) + overlap
        site.webhook_previous_secret = site.webhook_secret
    else:
        site.webhook_previous_secret = None
    site.webhook_previous_secret_until = until
    secret = new_webhook_secret()
    site.webhook_secret = secret
    await session.flush()
    _audit(
        session,
        actor,
        site,
        AuditAction.WEBHOOK_SECRET_ROTATED,
        {
            "overlap_seconds": seconds,
            "previous_valid_until": until.isoformat() if until else None,
        },
    )
    return SecretRotationOut(secret=secret, previous_valid_until=until)


@dataclass(frozen=True)
class GrantChange:
    """What ``grant_node`` / ``revoke_node`` did."""

    ae_title: str
    site_code: str
    own_site: bool
    changed: bool


async def _node_and_site(
    session: AsyncSession, ae_title: str, site_code: str
) -> tuple[DicomNode, Site]:
    node = await repository.get_node_by_ae_title(session, validate_ae_title(ae_title))
    if node is None:
        raise NotFound(f"no DICOM node with AE title {ae_title!r} (register it with `site add`)")
    site = await repository.get_site_by_code(session, site_code)
    if site is None:
        raise NotFound(f"no site {site_code!r}")
    return node, site


async def grant_node(
    *, session: AsyncSession, ae_title: str, site_code: str, actor: str
) -> GrantChange:
    """Let node ``ae_title`` query and retrieve ``site_code``'s studies (idempotent, audited)."""
    node, site = await _node_and_site(session, ae_title, site_code)
    own = node.site_id == site.id
    changed = False
    if not own and await repository.get_grant(session, node_id=node.id, site_id=site.id) is None:
        await repository.add_grant(session, node=node, site=site, granted_by=actor)
        audit.record(
            session,
            actor=actor,
            actor_kind=ActorKind.SYSTEM,
            action=AuditAction.NODE_GRANTED,
            site_id=site.id,
            detail={"ae_title": node.ae_title, "site": site.code},
        )
        changed = True
    return GrantChange(node.ae_title, site.code, own_site=own, changed=changed)


async def revoke_node(
    *, session: AsyncSession, ae_title: str, site_code: str, actor: str
) -> GrantChange:
    """Withdraw a grant (idempotent, audited); a node's own site cannot be revoked."""
    node, site = await _node_and_site(session, ae_title, site_code)
    if node.site_id == site.id:
        raise Conflict(f"{node.ae_title} belongs to {site.code}: its own site is not a grant")
    grant = await repository.get_grant(session, node_id=node.id, site_id=site.id)
    if grant is None:
        return GrantChange(node.ae_title, site.code, own_site=False, changed=False)
    await repository.delete_grant(session, grant)
    audit.record(
        session,
        actor=actor,
        actor_kind=ActorKind.SYSTEM,
        action=AuditAction.NODE_REVOKED,
        site_id=site.id,
        detail={"ae_title": node.ae_title, "site": site.code},
    )
    return GrantChange(node.ae_title, site.code, own_site=False, changed=True)
