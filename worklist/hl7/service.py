"""One HL7 order message in, one ACK out, and nothing half-stored.

The message's Sending Facility (MSH-4) must be registered to an active site
(``hl7_senders``) and, when the site lists addresses (``sites.hl7_hosts``), come from one
of them: else AR. A message that cannot be applied is AE/AR (``parse``). Otherwise its
orders are applied (``orders.service.apply_order``) and the message recorded in
``hl7_messages`` in ONE transaction, and AA is answered after the commit. A resend (the
same MSH-10 from the same facility) hits that table's primary key, which also holds when
both copies are in flight at once: the second insert waits for the first commit, fails,
rolls back whatever it applied, and the stored acknowledgement is answered again.
Staged events are published after the commit.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.audit.repository import ActorKind
from worklist.db import driver_connection, driver_errors, driver_sql
from worklist.enums import OrderSource, Priority
from worklist.events.bus import publish_staged
from worklist.hl7.ack import build_ack, internal_error
from worklist.hl7.errors import AckCode, ErrorCode, Hl7Rejection, reject
from worklist.hl7.fields import Header, declared_codec, decode, read_header
from worklist.hl7.parse import OrderMessage, parse_orders
from worklist.models import Hl7Message, Hl7Sender, Site
from worklist.orders.service import Actor, apply_order

log = logging.getLogger(__name__)

HL7_MESSAGES_TABLE = Hl7Message.__tablename__
# One text for an unknown facility and a known one from the wrong address: a stranger
# learns nothing about which facilities exist. The log says which it was.
NOT_REGISTERED = "sending facility not registered for this address"


@dataclass(frozen=True)
class _Sender:
    site_id: int
    hosts: tuple[str, ...]


@dataclass
class SenderCache:
    """Registered facilities seen lately, so a RIS's every message does not look its
    sender up again: a registration change reaches a running listener within ``ttl``
    seconds. Only registered, active senders are kept (an unknown one is asked for each
    time, so a facility registered a moment ago is accepted at once)."""

    ttl: float = 5.0
    _entries: dict[str, tuple[float, _Sender]] = field(default_factory=dict)

    def get(self, facility: str) -> _Sender | None:
        """The sender of ``facility`` if looked up less than ``ttl`` seconds ago."""
        entry = self._entries.get(facility)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, facility: str, sender: _Sender) -> None:
        """Remember ``sender`` (the cache holds at most what is registered)."""
        self._entries[facility] = (time.monotonic(), sender)


@dataclass(frozen=True)
class Hl7Context:
    """What handling a message needs: sessions, Redis for events, and the mappings."""

    sessions: async_sessionmaker[AsyncSession]
    redis: AsyncRedis | None
    priority_map: Mapping[str, Priority]
    turnaround_targets: Mapping[str, timedelta]
    senders: SenderCache = field(default_factory=SenderCache)


@dataclass(frozen=True)
class Outcome:
    """The ACK to send and what it said (for logs and metrics: no message content)."""

    ack: bytes
    code: AckCode
    error: ErrorCode | None = None
    resent: bool = False
    orders: int = 0
    reason: str | None = None
    facility: str = ""
    control_id: str = ""


def answer(
    header: Header | None,
    rejection: Hl7Rejection,
    *,
    codec: str | None = None,
    reason: str | None = None,
) -> Outcome:
    """The Outcome refusing a message with ``header`` for ``rejection``."""
    text = build_ack(header, rejection.ack, rejection=rejection)
    return Outcome(
        ack=text.encode(codec or "utf-8", errors="replace"),
        code=rejection.ack,
        error=rejection.code,
        reason=reason or rejection.text,
        facility=header.facility if header else "",
        control_id=header.control_id if header else "",
    )


async def handle_message(context: Hl7Context, data: bytes, *, peer: str | None) -> Outcome:
    """Apply one message (without its MLLP frame) from ``peer``; return its ACK."""
    codec = declared_codec(data)
    try:
        text = decode(data)
        header = read_header(text)
    except Hl7Rejection as rejection:
        return answer(None, rejection, codec=codec)
    # Parsed before the transaction (it is CPU only), refused after the sender is known.
    parsed: OrderMessage | None = None
    refusal: Hl7Rejection | None = None
    try:
        parsed = parse_orders(header, text, priority_map=context.priority_map)
    except Hl7Rejection as rejection:
        refusal = rejection
    async with context.sessions() as session:
        try:
            async with session.begin():
                site_id = await _sender_site(session, context.senders, header.facility, peer)
                if refusal is not None:
                    raise refusal
                assert parsed is not None
                await _apply(session, context, site_id, parsed, peer)
        except _Refused as refused:
            unknown = reject(ErrorCode.UNKNOWN_KEY, NOT_REGISTERED)
            return answer(header, unknown, codec=codec, reason=refused.reason)
        except Hl7Rejection as rejection:
            return answer(header, rejection, codec=codec)
        except IntegrityError as exc:
            if not _is_resend(exc):
                log.error("hl7 message not stored", extra={"error": type(exc.orig).__name__})
                return answer(header, internal_error(), codec=codec)
            return await _resend(session, header, codec)
        except (SQLAlchemyError, OSError) as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            log.error("hl7 message not stored", extra={"error": type(cause).__name__})
            return answer(header, internal_error(), codec=codec)
        if context.redis is not None:
            await publish_staged(context.redis, session)
    assert parsed is not None
    ack = build_ack(header, AckCode.ACCEPT).encode(codec or "utf-8", errors="replace")
    return Outcome(
        ack=ack,
        code=AckCode.ACCEPT,
        orders=len(parsed.orders),
        facility=header.facility,
        control_id=header.control_id,
    )


_FIND_SENDER = (
    select(Site.id, Site.hl7_hosts)
    .join(Hl7Sender, Hl7Sender.site_id == Site.id)
    .where(Hl7Sender.facility == bindparam("facility"), Site.active)
)
# Straight to the driver: one row, written on the spot (a resend fails here).
_RECORD_SQL, _ = driver_sql(
    insert(cast(Table, Hl7Message.__table__)).values(
        {name: bindparam(name) for name in ("facility", "control_id", "order_id", "ack_code")}
    )
)


async def _sender_site(
    session: AsyncSession, senders: SenderCache, facility: str, peer: str | None
) -> int:
    sender = senders.get(facility)
    if sender is None:
        connection = await session.connection()
        row = (await connection.execute(_FIND_SENDER, {"facility": facility})).one_or_none()
        if row is None:
            raise _Refused("unknown sending facility")
        sender = _Sender(site_id=int(row.id), hosts=tuple(row.hl7_hosts))
        senders.put(facility, sender)
    if sender.hosts and not address_allowed(peer, sender.hosts):
        raise _Refused("address not registered for the facility")
    return sender.site_id


class _Refused(Exception):
    """The sender is not one we take; ``reason`` (for the log) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def address_allowed(peer: str | None, hosts: Sequence[str]) -> bool:
    """Whether ``peer`` is one of ``hosts`` (IPv4-mapped IPv6 compared as IPv4)."""
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for host in hosts:
        try:
            if ipaddress.ip_address(host) == address:
                return True
        except ValueError:
            continue
    return False


async def _apply(
    session: AsyncSession,
    context: Hl7Context,
    site_id: int,
    parsed: OrderMessage,
    peer: str | None,
) -> None:
    facility = parsed.header.facility
    actor = Actor(name=f"hl7:{facility}", kind=ActorKind.NODE, address=peer)
    first_order: int | None = None
    for content in parsed.orders:
        applied = await apply_order(
            session,
            site_id=site_id,
            content=content,
            source=OrderSource.HL7,
            actor=actor,
            turnaround_targets=context.turnaround_targets,
        )
        first_order = first_order or applied.order_id
    message = {
        "facility": facility,
        "control_id": parsed.header.control_id,
        "order_id": first_order,
        "ack_code": AckCode.ACCEPT.value,
    }
    driver = await driver_connection(session)
    async with driver_errors(_RECORD_SQL):
        await driver.execute(_RECORD_SQL, message)


def _is_resend(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "table_name", None) == HL7_MESSAGES_TABLE


async def _resend(session: AsyncSession, header: Header, codec: str | None) -> Outcome:
    async with session.begin():
        stored = await session.scalar(
            select(Hl7Message.ack_code).where(
                Hl7Message.facility == header.facility,
                Hl7Message.control_id == header.control_id,
            )
        )
    code = AckCode(stored) if stored else AckCode.ACCEPT
    ack = build_ack(header, code).encode(codec or "utf-8", errors="replace")
    return Outcome(
        ack=ack,
        code=code,
        resent=True,
        facility=header.facility,
        control_id=header.control_id,
    )
