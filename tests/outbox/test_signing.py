"""Standard Webhooks signatures: verified by the official library, rotation without downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.outbox.conftest import add_webhook_site, enqueue_messages, running_dispatcher
from tests.receiver import Received, WebhookReceiver
from worklist.config import Settings
from worklist.outbox.signing import (
    InvalidSecret,
    secret_key,
    sign,
    valid_secrets,
    webhook_headers,
)
from worklist.sites.service import new_webhook_secret

BODY = '{"type":"alert.raised","timestamp":"2030-01-01T00:00:00.000+00:00","data":{"é":1}}'


def test_signature_is_what_the_standard_webhooks_library_computes() -> None:
    secret = new_webhook_secret()
    at = datetime(2030, 1, 1, tzinfo=UTC)
    expected = Webhook(secret).sign("msg_1", at, BODY)
    assert sign(secret, "msg_1", int(at.timestamp()), BODY) == expected


def test_headers_verify_with_the_library_and_tampering_does_not() -> None:
    secret = new_webhook_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_headers([secret], "msg_abc", now, BODY)
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(BODY.encode(), headers)["data"] == {"é": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("1}", "2}").encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(BODY.encode(), headers)


def test_during_a_rotation_old_and_new_secrets_both_verify() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    now = datetime.now(UTC)
    secrets = valid_secrets(new, old, now + timedelta(hours=1), now=now)
    assert secrets == (new, old)
    headers = webhook_headers(secrets, "msg_rot", int(now.timestamp()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY.encode(), headers)
    Webhook(new).verify(BODY.encode(), headers)


def test_after_the_overlap_only_the_new_secret_signs() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    now = datetime.now(UTC)
    secrets = valid_secrets(new, old, now - timedelta(seconds=1), now=now)
    assert secrets == (new,)
    headers = webhook_headers(secrets, "msg_rot", int(now.timestamp()), BODY)
    Webhook(new).verify(BODY.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(BODY.encode(), headers)


def test_unpadded_secrets_are_read_as_the_library_reads_them() -> None:
    secret = new_webhook_secret().rstrip("=")
    assert secret_key(secret) == secret_key(secret + "=")
    headers = webhook_headers([secret], "msg_x", int(datetime.now(UTC).timestamp()), BODY)
    Webhook(secret).verify(BODY.encode(), headers)


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!", ""])
def test_a_malformed_secret_is_refused(bad: str) -> None:
    with pytest.raises(InvalidSecret):
        webhook_headers([bad], "msg_x", 0, BODY)


def _verifies(secret: str, request: Received) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def test_delivered_webhooks_verify_with_old_and_new_secret_only_during_the_overlap(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    rotating = add_webhook_site(
        db,
        webhook_receiver.url + "?site=rotating",
        secret=new,
        webhook_previous_secret=old,
        webhook_previous_secret_until=datetime.now(UTC) + timedelta(hours=1),
    )
    rotated = add_webhook_site(
        db,
        webhook_receiver.url + "?site=rotated",
        secret=new,
        webhook_previous_secret=old,
        webhook_previous_secret_until=datetime.now(UTC) - timedelta(seconds=1),
    )
    # A receiver still configured with the old secret keeps working during the overlap.
    webhook_receiver.secrets = [old]
    enqueue_messages(db, rotating, 1)
    with running_dispatcher(fast):
        during = webhook_receiver.wait_accepted(1)[0]
        webhook_receiver.secrets = [old, new]
        enqueue_messages(db, rotated, 1)
        after = webhook_receiver.wait_for(
            lambda reqs: any("rotated" in r.path and r.status < 300 for r in reqs)
        )[-1]

    assert during.verified
    assert _verifies(old, during)
    assert _verifies(new, during)
    assert "rotated" in after.path
    assert _verifies(new, after)
    assert not _verifies(old, after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
