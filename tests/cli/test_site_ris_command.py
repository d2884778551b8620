"""`worklist site add ... --ris-host HOST --ris-port PORT`: where a trust's results go."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Invoke
from worklist.enums import AuditAction
from worklist.models import AuditEvent, DicomNode, Site


def add_site(invoke: Invoke, *extra: str, ae_title: str = "RXA_PACS"):  # type: ignore[no-untyped-def]
    return invoke("site", "add", "RXA", "--name", "RXA Trust", "--ae-title", ae_title, *extra)


def ris_of(db: sessionmaker[Session]) -> tuple[str | None, int | None]:
    with db() as session:
        site = session.scalars(select(Site).where(Site.code == "RXA")).one()
        return site.ris_host, site.ris_port


def test_site_add_registers_the_ris_target_and_site_list_shows_it(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = add_site(invoke, "--ris-host", "ris.rxa.nhs.uk", "--ris-port", "6661")

    assert result.exit_code == 0, result.output
    assert "results to RIS: ris.rxa.nhs.uk:6661" in result.stdout
    assert ris_of(db) == ("ris.rxa.nhs.uk", 6661)
    listing = invoke("site", "list")
    assert listing.exit_code == 0, listing.output
    assert "RIS" in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if "RXA_PACS" in line)
    assert "ris.rxa.nhs.uk:6661" in row


def test_an_existing_site_gets_its_ris_target_when_the_command_is_run_again(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "--host", "10.1.2.3", "--port", "104").exit_code == 0

    again = add_site(invoke, "--ris-host", "10.20.30.40", "--ris-port", "2575")
    moved = add_site(invoke, "--ris-host", "10.20.30.41", "--ris-port", "2576")

    assert again.exit_code == 0, again.output
    assert "already registered to site RXA" in again.stdout
    assert moved.exit_code == 0, moved.output
    assert ris_of(db) == ("10.20.30.41", 2576)
    with db() as session:
        [node] = session.scalars(select(DicomNode)).all()
        audit = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == AuditAction.SITE_ADDED)
            .order_by(AuditEvent.id)
        ).all()
    assert (node.hosts, node.port) == (["10.1.2.3"], 104)
    assert [a.detail["ris"] for a in audit] == [None, "10.20.30.40:2575", "10.20.30.41:2576"]
    assert [a.detail["created_node"] for a in audit] == [True, False, False]


def test_a_new_node_of_an_existing_site_may_bring_the_ris_target(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke).exit_code == 0

    result = add_site(
        invoke, "--ris-host", "ris.rxa.nhs.uk", "--ris-port", "6661", ae_title="RXA_CT"
    )

    assert result.exit_code == 0, result.output
    assert "node RXA_CT added to site RXA" in result.stdout
    assert ris_of(db) == ("ris.rxa.nhs.uk", 6661)


def test_the_same_ae_title_with_other_hosts_is_still_a_conflict(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "--host", "10.1.2.3").exit_code == 0

    result = add_site(invoke, "--host", "10.9.9.9", "--ris-host", "ris", "--ris-port", "1")

    assert result.exit_code == 1
    assert "already registered" in result.stderr
    assert ris_of(db) == (None, None)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--ris-host", "ris.rxa.nhs.uk"), "--ris-host and --ris-port go together"),
        (("--ris-port", "2575"), "--ris-host and --ris-port go together"),
        (("--ris-host", "ris rxa", "--ris-port", "2575"), "--ris-host must be a host name"),
        (("--ris-host", "ris.rxa.nhs.uk", "--ris-port", "0"), "invalid RIS port 0"),
        (("--ris-host", "ris.rxa.nhs.uk", "--ris-port", "65536"), "invalid RIS port 65536"),
    ],
)
def test_an_incomplete_or_invalid_ris_target_is_a_clear_error(
    invoke: Invoke, db: sessionmaker[Session], extra: tuple[str, ...], fragment: str
) -> None:
    result = add_site(invoke, *extra)

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert fragment in result.stderr
    with db() as session:
        assert session.scalars(select(Site)).all() == []


def test_site_webhook_shows_the_ris_target_and_its_deliveries(invoke: Invoke) -> None:
    assert add_site(invoke, "--ris-host", "ris.rxa.nhs.uk", "--ris-port", "6661").exit_code == 0

    result = invoke("site", "webhook", "RXA")

    assert result.exit_code == 0, result.output
    assert "results to RIS (ORU^R01 over MLLP): ris.rxa.nhs.uk:6661" in result.stdout
    assert "pending results: 0" in result.stdout
    assert "results refused by the RIS (AR, not retried): 0" in result.stdout
