"""Standard Webhooks signing: what lets a trust trust that a webhook came from us.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with the
base64-decoded key of the site's ``whsec_<base64>`` secret, sent as ``v1,<base64>``.
During a secret rotation the header carries one signature per valid secret (space
separated), so a receiver configured with either the old or the new secret accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
USER_AGENT = "imaging-worklist-webhooks/1"


class InvalidSecret(ValueError):
    """A stored webhook secret is not ``whsec_<base64>``."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    encoded = secret.removeprefix(SECRET_PREFIX).strip()
    try:
        # Unpadded base64 is accepted, as the Standard Webhooks libraries accept it.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("webhook secret is not whsec_<base64>") from exc
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """The ``v1,<base64>`` signature of ``body`` sent as ``webhook_id`` at ``timestamp``."""
    content = f"{webhook_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(secrets: Sequence[str], webhook_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: one signature per valid secret, space separated."""
    if not secrets:
        raise InvalidSecret("no webhook secret to sign with")
    return " ".join(sign(secret, webhook_id, timestamp, body) for secret in secrets)


def valid_secrets(
    current: str | None,
    previous: str | None,
    previous_until: datetime | None,
    *,
    now: datetime,
) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous one until its overlap ends."""
    secrets = [current] if current else []
    if previous and previous_until is not None and previous_until > now:
        secrets.append(previous)
    return tuple(secrets)


def webhook_headers(
    secrets: Sequence[str], webhook_id: str, timestamp: int, body: str
) -> dict[str, str]:
    """Every header of a Standard Webhooks POST of ``body``."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, webhook_id, timestamp, body),
    }
