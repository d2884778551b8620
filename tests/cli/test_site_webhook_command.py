"""`worklist site webhook CODE [--url] [--enable] [--rotate-secret [--overlap]]`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Invoke
from worklist.enums import AuditAction
from worklist.models import AuditEvent, Site

SECRET_LINE = re.compile(r"webhook secret \(shown once, store it now\): (whsec_\S+)")


def add_site(invoke: Invoke, code: str = "RXA") -> None:
    result = invoke("site", "add", code, "--name", f"{code} Trust", "--ae-title", f"{code}_PACS")
    assert result.exit_code == 0, result.output


def site_row(db: sessionmaker[Session], code: str = "RXA") -> Site:
    with db() as session:
        return session.scalars(select(Site).where(Site.code == code)).one()


def webhook_audit(db: sessionmaker[Session]) -> list[AuditEvent]:
    with db() as session:
        stmt = select(AuditEvent).where(AuditEvent.action.like("webhook.%")).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def test_status_of_a_site_without_endpoint(invoke: Invoke) -> None:
    add_site(invoke)

    result = invoke("site", "webhook", "RXA")

    assert result.exit_code == 0, result.output
    assert "site RXA (RXA Trust)" in result.stdout
    assert "webhook URL: -" in result.stdout
    assert "status: not_configured" in result.stdout
    assert "pending deliveries: 0" in result.stdout
    assert "secret" not in result.stdout


def test_setting_the_url_prints_the_new_secret_once(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke)

    first = invoke("site", "webhook", "RXA", "--url", "https://rxa.example/hooks")
    second = invoke("site", "webhook", "RXA", "--url", "https://rxa.example/v2")

    assert first.exit_code == 0, first.output
    assert "status: active" in first.stdout
    match = SECRET_LINE.search(first.stdout)
    assert match is not None
    site = site_row(db)
    assert match.group(1) == site.webhook_secret
    assert second.exit_code == 0, second.output
    assert "whsec_" not in second.stdout
    assert site_row(db).webhook_url == "https://rxa.example/v2"
    rows = webhook_audit(db)
    assert [r.action for r in rows] == [AuditAction.WEBHOOK_CHANGED] * 2
    assert all(r.actor.startswith("cli:") for r in rows)
    assert match.group(1) not in json.dumps([r.detail for r in rows])


def test_enable_shows_then_clears_a_410(invoke: Invoke, db: sessionmaker[Session]) -> None:
    add_site(invoke)
    assert invoke("site", "webhook", "RXA", "--url", "https://rxa.example/h").exit_code == 0
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == "RXA")).one()
        site.webhook_disabled_at = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
        site.webhook_disabled_reason = "410 Gone from https://rxa.example/h"

    shown = invoke("site", "webhook", "RXA")
    enabled = invoke("site", "webhook", "RXA", "--enable")

    assert "status: disabled since 2030-01-07T09:00:00+00:00 (410 Gone from" in shown.stdout
    assert enabled.exit_code == 0, enabled.output
    assert "status: active" in enabled.stdout
    assert site_row(db).webhook_disabled_at is None
    assert webhook_audit(db)[-1].action == AuditAction.WEBHOOK_ENABLED


def test_rotate_secret_with_overlap_keeps_the_old_secret_valid(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke)
    assert invoke("site", "webhook", "RXA", "--url", "https://rxa.example/h").exit_code == 0
    old = site_row(db).webhook_secret

    result = invoke("site", "webhook", "RXA", "--rotate-secret", "--overlap", "2h")

    assert result.exit_code == 0, result.output
    match = SECRET_LINE.search(result.stdout)
    assert match is not None
    site = site_row(db)
    assert match.group(1) == site.webhook_secret != old
    assert site.webhook_previous_secret == old
    assert site.webhook_previous_secret_until is not None
    remaining = site.webhook_previous_secret_until - datetime.now(UTC)
    assert timedelta(minutes=119) < remaining <= timedelta(hours=2)
    assert "secret rollover: previous secret valid until" in result.stdout
    [*_, rotated] = webhook_audit(db)
    assert rotated.action == AuditAction.WEBHOOK_SECRET_ROTATED
    assert rotated.detail["overlap_seconds"] == 7200
    assert old is not None
    assert old not in json.dumps(rotated.detail)


def test_overlap_without_rotation_is_an_error(invoke: Invoke, db: sessionmaker[Session]) -> None:
    add_site(invoke)

    result = invoke("site", "webhook", "RXA", "--overlap", "1h")

    assert result.exit_code == 1
    assert "--overlap only applies with --rotate-secret" in result.stderr
    assert webhook_audit(db) == []


def test_unknown_site_and_bad_url_are_clean_errors(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke)

    unknown = invoke("site", "webhook", "NOPE")
    bad_url = invoke("site", "webhook", "RXA", "--url", "ftp://rxa.example/h")

    assert unknown.exit_code == 1
    assert unknown.stderr == "error: site not found\n"
    assert bad_url.exit_code == 1
    assert "http:// or https://" in bad_url.stderr
    assert "Traceback" not in bad_url.output
    assert site_row(db).webhook_url is None
