"""`worklist site add|list` and `worklist user add` against a real database."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.cli.conftest import Invoke
from tests.conftest import TEST_PASSWORD_COST
from tests.factories import load_user
from worklist.auth.passwords import verify_password
from worklist.enums import AuditAction, Role
from worklist.models import AuditEvent, DicomNode, Hl7Sender, Site, User

PASSWORD = "a-long-enough-password"


def add_site(invoke: Invoke, code: str = "RXA", ae_title: str = "RXA_PACS", *extra: str):  # type: ignore[no-untyped-def]
    return invoke("site", "add", code, "--name", f"{code} Trust", "--ae-title", ae_title, *extra)


def assert_clean_error(result, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_site_add_registers_site_and_node_and_site_list_shows_them(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = add_site(
        invoke, "RXA", "RXA_PACS", "--host", "10.1.2.3", "--host", "10.1.2.4", "--port", "104"
    )

    assert result.exit_code == 0, result.output
    assert "RXA" in result.stdout
    assert "RXA_PACS" in result.stdout
    with db() as session:
        node = session.scalars(select(DicomNode)).one()
        site = session.get(Site, node.site_id)
    assert site is not None
    assert site.code == "RXA"
    assert site.name == "RXA Trust"
    assert node.ae_title == "RXA_PACS"
    assert node.hosts == ["10.1.2.3", "10.1.2.4"]
    assert node.port == 104

    listing = invoke("site", "list")
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.stdout.splitlines() if "RXA_PACS" in line)
    assert "RXA Trust" in row
    assert "10.1.2.3, 10.1.2.4" in row
    assert "104" in row


def test_site_list_says_when_no_site_is_registered(invoke: Invoke) -> None:
    result = invoke("site", "list")

    assert result.exit_code == 0
    assert "no sites registered" in result.stdout


def test_second_ae_title_on_same_code_adds_a_node(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "RXA", "RXA_PACS").exit_code == 0

    result = add_site(invoke, "RXA", "RXA_CT1", "--host", "10.0.0.9")

    assert result.exit_code == 0, result.output
    assert "registered" not in result.stdout  # the site existed already
    with db() as session:
        assert session.scalar(select(Site.id).where(Site.code == "RXA")) is not None
        assert len(session.scalars(select(Site)).all()) == 1
        titles = set(session.scalars(select(DicomNode.ae_title)))
    assert titles == {"RXA_PACS", "RXA_CT1"}
    listing = invoke("site", "list").stdout
    assert "RXA_PACS" in listing
    assert "RXA_CT1" in listing


def test_duplicate_ae_title_is_a_clear_error(invoke: Invoke, db: sessionmaker[Session]) -> None:
    assert add_site(invoke, "RXA", "SHARED_AE").exit_code == 0

    result = add_site(invoke, "RXB", "SHARED_AE")

    assert_clean_error(result, "SHARED_AE")
    assert "already registered" in result.stderr
    with db() as session:
        assert session.scalar(select(Site).where(Site.code == "RXB")) is None


@pytest.mark.parametrize(
    ("code", "ae_title", "extra", "fragment"),
    [
        ("RXA", "THIS_AE_TITLE_IS_TOO_LONG", (), "invalid AE title"),
        ("RXA", "BAD\\AE", (), "invalid AE title"),
        ("RXA", "RXA_PACS", ("--host", "pacs.example.nhs.uk"), "--host must be an IP address"),
        ("RXA", "RXA_PACS", ("--port", "70000"), "invalid port 70000"),
        ("RXA", "RXA_PACS", ("--port", "0"), "invalid port 0"),
        ("rx a", "RXA_PACS", (), "invalid site code"),
        ("RXA", "RXA_PACS", ("--webhook-url", "ftp://example.org/hook"), "http:// or https://"),
    ],
)
def test_site_add_rejects_bad_input_with_a_clear_error(
    invoke: Invoke,
    db: sessionmaker[Session],
    code: str,
    ae_title: str,
    extra: tuple[str, ...],
    fragment: str,
) -> None:
    result = add_site(invoke, code, ae_title, *extra)

    assert_clean_error(result, fragment)
    with db() as session:
        assert session.scalars(select(Site)).all() == []


def test_non_numeric_port_is_a_usage_error(invoke: Invoke) -> None:
    result = add_site(invoke, "RXA", "RXA_PACS", "--port", "eleven")

    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_webhook_secret_is_printed_once_in_standard_webhooks_form(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = add_site(invoke, "RXA", "RXA_PACS", "--webhook-url", "https://alerts.rxa.example/hook")

    assert result.exit_code == 0, result.output
    secrets = [word for word in result.stdout.split() if word.startswith("whsec_")]
    assert len(secrets) == 1
    secret = secrets[0]
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    with db() as session:
        stored = session.scalar(select(Site.webhook_secret).where(Site.code == "RXA"))
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.SITE_ADDED)
        ).one()
    assert stored == secret
    assert secret not in str(audit.detail)

    another_node = add_site(invoke, "RXA", "RXA_CT1")
    listing = invoke("site", "list")

    assert "whsec_" not in another_node.output
    assert listing.exit_code == 0
    assert "https://alerts.rxa.example/hook" in listing.stdout
    assert "whsec_" not in listing.output
    assert secret.removeprefix("whsec_") not in listing.output


def test_user_add_reads_the_password_from_stdin(invoke: Invoke, db: sessionmaker[Session]) -> None:
    add_site(invoke, "RXA", "RXA_PACS")
    add_site(invoke, "RXB", "RXB_PACS")

    result = invoke(
        "user",
        "add",
        "dr.who",
        "--role",
        "radiologist",
        "--site",
        "RXA",
        "--site",
        "RXB",
        "--password-stdin",
        input=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    with db() as session:
        user = load_user(session, "dr.who")
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.USER_ADDED)
        ).one()
    assert user is not None
    assert user.role is Role.RADIOLOGIST
    assert sorted(site.code for site in user.sites) == ["RXA", "RXB"]
    assert verify_password(user.password_hash, PASSWORD, cost=TEST_PASSWORD_COST)
    assert not verify_password(user.password_hash, PASSWORD + "\n", cost=TEST_PASSWORD_COST)
    assert audit.detail["username"] == "dr.who"
    assert PASSWORD not in str(audit.detail)
    assert PASSWORD not in result.output


def test_user_add_prompts_for_the_password_with_confirmation(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = invoke(
        "user", "add", "root.admin", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n"
    )

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input
    with db() as session:
        user = load_user(session, "root.admin")
    assert user is not None
    assert verify_password(user.password_hash, PASSWORD, cost=TEST_PASSWORD_COST)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--role", "manager", "--site", "RXA", "--site", "RXB"), "exactly one site"),
        (("--role", "alert_client"), "exactly one site"),
        (("--role", "order_client"), "exactly one site"),
        (("--role", "order_client", "--site", "RXA", "--site", "RXB"), "exactly one site"),
        (("--role", "radiologist"), "at one site at least"),
        (("--role", "admin", "--site", "RXA"), "network-wide"),
        (("--role", "radiologist", "--site", "NOPE"), "no site with code 'NOPE'"),
    ],
)
def test_user_add_enforces_role_site_rules(
    invoke: Invoke, db: sessionmaker[Session], args: tuple[str, ...], fragment: str
) -> None:
    add_site(invoke, "RXA", "RXA_PACS")
    add_site(invoke, "RXB", "RXB_PACS")

    result = invoke("user", "add", "someone", *args, "--password-stdin", input=PASSWORD + "\n")

    assert_clean_error(result, fragment)
    with db() as session:
        assert session.scalars(select(User)).all() == []


def test_user_add_makes_an_order_client_of_one_site(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    add_site(invoke, "RXA", "RXA_PACS")

    result = invoke(
        "user",
        "add",
        "rxa.ris",
        "--role",
        "order_client",
        "--site",
        "RXA",
        "--password-stdin",
        input=PASSWORD + "\n",
    )

    assert result.exit_code == 0, result.output
    assert "order_client" in result.stdout
    with db() as session:
        user = load_user(session, "rxa.ris")
    assert user is not None
    assert user.role is Role.ORDER_CLIENT
    assert [site.code for site in user.sites] == ["RXA"]
    listing = invoke("user", "list", "--role", "order_client")
    assert listing.exit_code == 0, listing.output
    assert "rxa.ris" in listing.stdout


def test_user_add_rejects_short_password_and_existing_username(invoke: Invoke) -> None:
    short = invoke("user", "add", "boss", "--role", "admin", "--password-stdin", input="short\n")
    assert_clean_error(short, "at least 8 characters")

    first = invoke("user", "add", "boss", "--role", "admin", "--password-stdin", input=PASSWORD)
    again = invoke("user", "add", "boss", "--role", "admin", "--password-stdin", input=PASSWORD)

    assert first.exit_code == 0, first.output
    assert_clean_error(again, "already exists")


def test_unknown_role_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("user", "add", "x", "--role", "superuser", "--password-stdin", input=PASSWORD)

    assert result.exit_code == 2
    assert "superuser" in result.output


def test_empty_stdin_password_is_a_clear_error(invoke: Invoke) -> None:
    result = invoke("user", "add", "boss", "--role", "admin", "--password-stdin", input="")

    assert_clean_error(result, "no password was read from stdin")


def test_admin_commands_need_a_database_url(invoke: Invoke) -> None:
    result = invoke("site", "list", env={"WORKLIST_DATABASE_URL": None})

    assert_clean_error(result, "WORKLIST_DATABASE_URL is not set")


def test_unreachable_database_is_a_clear_error(invoke: Invoke) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"

    result = invoke("site", "list", env={"WORKLIST_DATABASE_URL": url})

    assert_clean_error(result, "cannot reach the database")


def test_invalid_setting_is_a_clear_error(invoke: Invoke) -> None:
    result = invoke("site", "list", env={"WORKLIST_TURNAROUND_TARGETS": "stat=soon"})

    assert_clean_error(result, "WORKLIST_TURNAROUND_TARGETS")


def test_site_add_registers_the_ris_hl7_facilities_and_hosts(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = add_site(
        invoke, "RXA", "RXA_PACS", "--hl7-facility", "RXA_RIS", "--hl7-facility", "RXA_CRIS",
        "--hl7-host", "10.1.2.9",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "HL7 facility RXA_RIS added to site RXA" in result.stdout
    with db() as session:
        site = session.scalars(select(Site)).one()
        senders = {s.facility: s.site_id for s in session.scalars(select(Hl7Sender))}
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.SITE_ADDED)
        ).one()
    assert senders == {"RXA_RIS": site.id, "RXA_CRIS": site.id}
    assert site.hl7_hosts == ["10.1.2.9"]
    assert audit.detail["hl7_facilities"] == ["RXA_RIS", "RXA_CRIS"]
    listing = invoke("site", "list").stdout
    assert "RXA_CRIS, RXA_RIS (from 10.1.2.9)" in listing


def test_hl7_facilities_and_hosts_are_added_to_an_existing_site(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "RXA", "RXA_PACS", "--hl7-facility", "RXA_RIS").exit_code == 0

    result = invoke(
        "site", "add", "RXA", "--name", "RXA Trust", "--hl7-facility", "RXA_RIS",
        "--hl7-facility", "RXA_NEW", "--hl7-host", "10.0.0.7", "--hl7-host", "10.0.0.7",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "registered" not in result.stdout
    assert "node" not in result.stdout
    assert "HL7 facility RXA_NEW added" in result.stdout
    assert "RXA_RIS added" not in result.stdout
    with db() as session:
        assert set(session.scalars(select(Hl7Sender.facility))) == {"RXA_RIS", "RXA_NEW"}
        assert session.scalars(select(Site.hl7_hosts)).one() == ["10.0.0.7"]
        assert len(session.scalars(select(DicomNode)).all()) == 1


def test_an_existing_site_needs_no_name_and_a_new_one_does(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "RXA", "RXA_PACS").exit_code == 0

    added = invoke("site", "add", "RXA", "--hl7-facility", "RXA_RIS")
    unknown = invoke("site", "add", "RXB", "--hl7-facility", "RXB_RIS")

    assert added.exit_code == 0, added.output
    assert "HL7 facility RXA_RIS added to site RXA" in added.stdout
    assert unknown.exit_code != 0
    assert "site RXB is not registered yet: give its --name" in unknown.output
    with db() as session:
        assert set(session.scalars(select(Hl7Sender.facility))) == {"RXA_RIS"}
        assert set(session.scalars(select(Site.code))) == {"RXA"}


def test_a_site_can_be_registered_with_its_ris_alone(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    result = invoke("site", "add", "RXC", "--name", "RXC Trust", "--hl7-facility", "RXC_RIS")

    assert result.exit_code == 0, result.output
    assert "site RXC (RXC Trust) registered" in result.stdout
    with db() as session:
        assert session.scalars(select(Hl7Sender.facility)).all() == ["RXC_RIS"]
        assert session.scalars(select(DicomNode)).all() == []


def test_a_facility_of_another_site_is_a_clear_error(
    invoke: Invoke, db: sessionmaker[Session]
) -> None:
    assert add_site(invoke, "RXA", "RXA_PACS", "--hl7-facility", "SHARED").exit_code == 0

    result = add_site(invoke, "RXB", "RXB_PACS", "--hl7-facility", "SHARED")

    assert_clean_error(result, "SHARED")
    with db() as session:
        assert session.scalar(select(Site).where(Site.code == "RXB")) is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--hl7-facility", "RXA|RIS"), "invalid HL7 facility"),
        (("--hl7-facility", ""), "invalid HL7 facility"),
        (("--hl7-facility", "RXA_RIS", "--hl7-host", "ris.example.nhs.uk"), "--hl7-host"),
    ],
)
def test_invalid_hl7_options_are_clear_errors(
    invoke: Invoke, db: sessionmaker[Session], extra: tuple[str, ...], fragment: str
) -> None:
    result = add_site(invoke, "RXA", "RXA_PACS", *extra)

    assert_clean_error(result, fragment)
    with db() as session:
        assert session.scalars(select(Site)).all() == []


@pytest.mark.parametrize(
    "extra",
    [(), ("--host", "10.0.0.1")],
)
def test_without_ae_title_or_hl7_options_site_add_says_what_is_missing(
    invoke: Invoke, extra: tuple[str, ...]
) -> None:
    result = invoke("site", "add", "RXA", "--name", "RXA Trust", *extra)

    assert_clean_error(result, "--ae-title")
