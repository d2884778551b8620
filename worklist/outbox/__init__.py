"""The transactional outbox: what the originating trust must receive, written with the change.

Domain code calls ``enqueue`` inside the transaction that makes the change (raising an
alert, signing a report, ...). The message and its deliveries commit or roll back with
it, so a committed change is never without its notification and a rolled-back one
never announces itself. After the commit the request (or worker job) publishes a
wake-up on Redis (``WAKE_CHANNEL``) so the dispatcher and the alert streams react at
once; without Redis they find the rows on their next poll. PostgreSQL is the truth.

Message body (Standard Webhooks payload, signed and sent byte-for-byte on every retry):
``{"type": "<event type>", "timestamp": "<ISO 8601 UTC>", "data": {...}}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import DeliveryChannel, OutboxEventType
from worklist.models import Delivery, OutboxMessage, Site

# Redis pub/sub channel: the payload is the comma-separated ids of sites with new messages.
WAKE_CHANNEL = "worklist:outbox"
# session.info key: the site ids whose messages this transaction added.
WAKE_KEY = "worklist.outbox.wake"
ALERT_EVENT_PREFIX = "alert."


def new_webhook_id() -> str:
    """A Standard Webhooks message id: ``msg_`` + 32 hex digits."""
    return f"msg_{uuid.uuid4().hex}"


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an outbox message")


def encode_body(event_type: str, data: Mapping[str, Any], *, at: datetime) -> str:
    """The webhook payload for ``data`` (compact JSON, UTF-8 text)."""
    payload = {
        "type": event_type,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "data": data,
    }
    return json.dumps(payload, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def new_message(
    *,
    site: Site,
    event_type: OutboxEventType,
    data: Mapping[str, Any],
    study_id: int | None = None,
    alert_id: uuid.UUID | None = None,
    sse: bool = False,
    hl7: bool = False,
) -> tuple[OutboxMessage, list[Delivery]]:
    """The rows of a message for ``site``: the message and its deliveries, not yet added.

    A webhook delivery when the site has a webhook URL (a disabled endpoint holds it
    until re-enabled) or had one that was removed (held until a URL is set again); an
    ``sse`` delivery when ``sse`` (alert events: the alert stream marks it delivered once
    a client of the site received it); an ``hl7`` delivery when ``hl7`` (results: an
    ORU^R01 to the site's RIS) and the site has a RIS target. ``enqueue`` is how the
    domain adds them.
    """
    message = OutboxMessage(
        webhook_id=new_webhook_id(),
        site_id=site.id,
        type=str(event_type),
        study_id=study_id,
        alert_id=alert_id,
        body=encode_body(str(event_type), data, at=datetime.now(UTC)),
    )
    channels = []
    if site.webhook_url or site.webhook_disabled_at is not None:
        channels.append(DeliveryChannel.WEBHOOK)
    if sse:
        channels.append(DeliveryChannel.SSE)
    if hl7 and site.ris_host and site.ris_port:
        channels.append(DeliveryChannel.HL7)
    deliveries = [
        Delivery(message=message, site_id=site.id, channel=channel) for channel in channels
    ]
    return message, deliveries


def enqueue(
    session: AsyncSession,
    *,
    site: Site,
    event_type: OutboxEventType,
    data: Mapping[str, Any],
    study_id: int | None = None,
    alert_id: uuid.UUID | None = None,
    sse: bool = False,
    hl7: bool = False,
) -> OutboxMessage:
    """Add a message for ``site`` and its deliveries (``new_message``) to the transaction.

    Nothing is flushed here; the readers are woken for the site once it commits.
    """
    message, deliveries = new_message(
        site=site,
        event_type=event_type,
        data=data,
        study_id=study_id,
        alert_id=alert_id,
        sse=sse,
        hl7=hl7,
    )
    session.add(message)
    session.add_all(deliveries)
    stage_wakeup(session, site.id)
    return message


def stage_wakeup(session: AsyncSession, site_id: int) -> None:
    """Wake the outbox's readers for ``site_id`` once ``session`` commits (e.g. its
    endpoint was re-enabled, so held deliveries can go out now)."""
    session.info.setdefault(WAKE_KEY, set()).add(site_id)


def staged_wakeups(session: AsyncSession) -> set[int]:
    """Take the site ids whose messages ``session`` added (clearing them)."""
    sites: set[int] = session.info.pop(WAKE_KEY, set())
    return sites


def wake_payload(site_ids: set[int]) -> str:
    """The pub/sub payload announcing new messages of ``site_ids``."""
    return ",".join(str(i) for i in sorted(site_ids))


def parse_wake_payload(payload: bytes | str) -> set[int]:
    """The site ids a wake-up names (malformed parts are ignored)."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    return {int(part) for part in text.split(",") if part.strip().isdigit()}
