"""`worklist site webhook --url/--remove` and `site add --webhook-url` under the target policy."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Invoke
from tests.cli.test_site_webhook_command import add_site, site_row, webhook_audit
from worklist.enums import AuditAction
from worklist.models import Site

STRICT = {"WORKLIST_WEBHOOK_ALLOW_PRIVATE": "false", "WORKLIST_WEBHOOK_ALLOWED_NETWORKS": None}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:1/", "127.0.0.1 is a loopback address"),
        ("http://localhost:5432/", "localhost names this machine"),
        ("http://[::1]:1/", "::1 is a loopback address"),
        ("http://0/", "non-standard spelling of 0.0.0.0"),
        ("http://169.254.169.254/latest/", "link-local"),
        ("http://admin:pw@rxa.example/h", "credentials are not allowed"),
    ],
)
def test_webhook_url_refuses_a_target_that_is_not_public(
    invoke: Invoke, db: sessionmaker[Session], url: str, reason: str
) -> None:
    add_site(invoke)

    result = invoke("site", "webhook", "RXA", "--url", url, env=STRICT)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert reason in result.stderr
    assert "Traceback" not in result.output
    assert site_row(db).webhook_url is None
    assert webhook_audit(db) == []


def test_site_add_refuses_a_loopback_webhook_url_and_stores_nothing(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = invoke(
        "site",
        "add",
        "RXA",
        "--name",
        "RXA Trust",
        "--ae-title",
        "RXA_PACS",
        "--webhook-url",
        "http://localhost:5432/",
        env=STRICT,
    )

    assert result.exit_code == 1
    assert "localhost names this machine" in result.stderr
    with db() as session:
        assert session.scalars(select(Site)).all() == []


def test_allowing_private_targets_or_their_network_admits_them(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke)

    loopback = invoke(
        "site",
        "webhook",
        "RXA",
        "--url",
        "http://127.0.0.1:9000/h",
        env={"WORKLIST_WEBHOOK_ALLOW_PRIVATE": "true"},
    )
    listed = invoke(
        "site",
        "webhook",
        "RXA",
        "--url",
        "http://10.20.1.2/h",
        env={**STRICT, "WORKLIST_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16"},
    )
    unlisted = invoke(
        "site",
        "webhook",
        "RXA",
        "--url",
        "http://10.21.1.2/h",
        env={**STRICT, "WORKLIST_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16"},
    )

    assert loopback.exit_code == 0, loopback.output
    assert listed.exit_code == 0, listed.output
    assert unlisted.exit_code == 1
    assert "10.21.1.2 is a private address" in unlisted.stderr
    assert site_row(db).webhook_url == "http://10.20.1.2/h"


def test_remove_holds_deliveries_until_a_url_is_set_again(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke)
    assert invoke("site", "webhook", "RXA", "--url", "https://rxa.example/h").exit_code == 0

    removed = invoke("site", "webhook", "RXA", "--remove")
    readded = invoke("site", "webhook", "RXA", "--url", "https://rxa.example/v2")

    assert removed.exit_code == 0, removed.output
    assert "webhook URL: -" in removed.stdout
    assert "status: removed since" in removed.stdout
    assert site_row(db).webhook_url == "https://rxa.example/v2"
    assert readded.exit_code == 0, readded.output
    assert "status: active" in readded.stdout
    assert "whsec_" not in readded.stdout  # the secret was kept
    actions = [r.action for r in webhook_audit(db)]
    assert actions == [
        AuditAction.WEBHOOK_CHANGED,
        AuditAction.WEBHOOK_REMOVED,
        AuditAction.WEBHOOK_CHANGED,
    ]
    assert all(r.actor.startswith("cli:") for r in webhook_audit(db))


def test_remove_with_url_or_enable_is_an_error(invoke: Invoke, db: sessionmaker[Session]) -> None:
    add_site(invoke)

    result = invoke("site", "webhook", "RXA", "--remove", "--url", "https://rxa.example/h")

    assert result.exit_code == 1
    assert "--remove cannot be combined" in result.stderr
    assert site_row(db).webhook_url is None
