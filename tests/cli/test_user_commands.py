"""`worklist user add|list|disable|enable|password|grant|revoke` against a real database."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_site
from tests.cli.conftest import Invoke
from tests.conftest import TEST_PASSWORD_COST
from tests.factories import load_user
from worklist.auth.passwords import verify_password
from worklist.enums import AuditAction
from worklist.models import AuditEvent, User

PASSWORD = "a-long-enough-password"
NEW_PASSWORD = "another-long-password"


@pytest.fixture
def sites(db: sessionmaker[Session]) -> None:
    """Trusts RXA and RXB."""
    with db() as session, session.begin():
        add_site(session, "RXA")
        add_site(session, "RXB")


def add(invoke: Invoke, username: str, *options: str) -> None:
    """`user add` that must succeed."""
    result = invoke("user", "add", username, *options, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output


def stored(db: sessionmaker[Session], username: str) -> User:
    """The user as committed."""
    with db() as session:
        user = load_user(session, username)
        assert user is not None
        return user


def audited(db: sessionmaker[Session], action: str) -> list[AuditEvent]:
    """Committed audit rows of one action."""
    with db() as session:
        stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def test_user_add_stores_name_registration_home_site_and_subspecialties(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(
        invoke,
        "dr.jones",
        "--role",
        "radiologist",
        "--site",
        "RXA",
        "--site",
        "RXB",
        "--name",
        "Dr Jo Jones",
        "--registration",
        "GMC1234567",
        "--home-site",
        "RXB",
        "--subspecialty",
        "neuro",
        "--subspecialty",
        "head_neck",
    )

    user = stored(db, "dr.jones")
    assert (user.name, user.registration) == ("Dr Jo Jones", "GMC1234567")
    assert user.home_site is not None
    assert user.home_site.code == "RXB"
    assert user.subspecialties == ["neuro", "head_neck"]
    [row] = audited(db, AuditAction.USER_ADDED)
    assert row.detail["registration"] == "GMC1234567"
    assert row.detail["home_site"] == "RXB"


@pytest.mark.parametrize(
    ("options", "exit_code", "fragment"),
    [
        (("--subspecialty", "dermatology"), 1, "unknown subspecialty 'dermatology'"),
        (("--registration", "12345"), 1, "registration must be"),
        (("--home-site", "NOPE"), 1, "no site with code 'NOPE'"),
    ],
)
def test_user_add_refuses_an_unknown_subspecialty_registration_or_home_site(
    invoke: Invoke,
    db: sessionmaker[Session],
    sites: None,
    options: tuple[str, ...],
    exit_code: int,
    fragment: str,
) -> None:
    result = invoke(
        "user",
        "add",
        "dr.bad",
        "--role",
        "radiologist",
        "--site",
        "RXA",
        *options,
        "--password-stdin",
        input=PASSWORD + "\n",
    )

    assert result.exit_code == exit_code, result.output
    assert fragment in result.output
    with db() as session:
        assert load_user(session, "dr.bad") is None


def test_user_list_shows_every_account_with_its_state_and_privileges(
    invoke: Invoke, sites: None
) -> None:
    add(invoke, "dr.one", "--role", "radiologist", "--site", "RXA", "--name", "Dr One")
    add(invoke, "rxb.manager", "--role", "manager", "--site", "RXB")
    assert invoke("user", "disable", "rxb.manager").exit_code == 0

    result = invoke("user", "list")
    only_rxa = invoke("user", "list", "--site", "RXA")

    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line[:2]}
    assert "radiologist" in rows["dr.one"]
    assert "active" in rows["dr.one"]
    assert "Dr One" in rows["dr.one"]
    assert "disabled" in rows["rxb.manager"]
    assert "RXB" in rows["rxb.manager"]
    assert "dr.one" in only_rxa.stdout
    assert "rxb.manager" not in only_rxa.stdout
    assert "argon2" not in result.stdout


def test_user_list_says_when_there_are_no_users(invoke: Invoke) -> None:
    result = invoke("user", "list")

    assert result.exit_code == 0
    assert "no users" in result.stdout


def test_user_disable_and_enable_flip_the_account_and_are_audited(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(invoke, "dr.leaver", "--role", "radiologist", "--site", "RXA")

    disabled = invoke("user", "disable", "dr.leaver")
    again = invoke("user", "disable", "dr.leaver")

    assert disabled.exit_code == 0, disabled.output
    assert "disabled" in disabled.stdout
    assert "already disabled" in again.stdout
    assert stored(db, "dr.leaver").active is False
    enabled = invoke("user", "enable", "dr.leaver")
    assert enabled.exit_code == 0
    assert stored(db, "dr.leaver").active is True
    [off] = audited(db, AuditAction.USER_DISABLED)
    [on] = audited(db, AuditAction.USER_ENABLED)
    assert off.actor.startswith("cli:")
    assert off.actor_kind == "system"
    assert (off.detail, on.detail) == ({"username": "dr.leaver"}, {"username": "dr.leaver"})


def test_user_password_replaces_the_password(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(invoke, "dr.forgot", "--role", "radiologist", "--site", "RXA")
    version = stored(db, "dr.forgot").token_version

    result = invoke("user", "password", "dr.forgot", "--password-stdin", input=NEW_PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    user = stored(db, "dr.forgot")
    assert verify_password(user.password_hash, NEW_PASSWORD, cost=TEST_PASSWORD_COST)
    assert not verify_password(user.password_hash, PASSWORD, cost=TEST_PASSWORD_COST)
    # Hashed at the cost the environment configures (the tests' minimum), not the default.
    assert user.password_hash is not None
    parameters = extract_parameters(user.password_hash)
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (1, 8, 1)
    assert user.token_version == version + 1
    [row] = audited(db, AuditAction.USER_PASSWORD_RESET)
    assert NEW_PASSWORD not in repr(row.detail)


def test_user_password_refuses_a_short_password(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(invoke, "dr.forgot", "--role", "radiologist", "--site", "RXA")

    result = invoke("user", "password", "dr.forgot", "--password-stdin", input="short\n")

    assert result.exit_code == 1
    assert "at least 8" in result.stderr
    assert verify_password(stored(db, "dr.forgot").password_hash, PASSWORD, cost=TEST_PASSWORD_COST)


def test_user_grant_and_revoke_change_the_sites_and_are_audited(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(invoke, "dr.mover", "--role", "radiologist", "--site", "RXA")

    granted = invoke("user", "grant", "dr.mover", "--site", "RXB")
    regranted = invoke("user", "grant", "dr.mover", "--site", "RXB")

    assert granted.exit_code == 0, granted.output
    assert "already held" in regranted.stdout
    assert sorted(s.code for s in stored(db, "dr.mover").sites) == ["RXA", "RXB"]
    revoked = invoke("user", "revoke", "dr.mover", "--site", "RXA")
    assert revoked.exit_code == 0, revoked.output
    assert [s.code for s in stored(db, "dr.mover").sites] == ["RXB"]
    assert [r.detail["site"] for r in audited(db, AuditAction.USER_PRIVILEGE_GRANTED)] == ["RXB"]
    assert [r.detail["site"] for r in audited(db, AuditAction.USER_PRIVILEGE_REVOKED)] == ["RXA"]


def test_user_revoke_of_a_radiologists_last_site_is_refused(
    invoke: Invoke, db: sessionmaker[Session], sites: None
) -> None:
    add(invoke, "dr.only", "--role", "radiologist", "--site", "RXA")

    result = invoke("user", "revoke", "dr.only", "--site", "RXA")

    assert result.exit_code == 1
    assert "one site at least" in result.stderr
    assert [s.code for s in stored(db, "dr.only").sites] == ["RXA"]


@pytest.mark.parametrize(
    "args",
    [
        ("disable", "ghost"),
        ("enable", "ghost"),
        ("grant", "ghost", "--site", "RXA"),
        ("revoke", "ghost", "--site", "RXA"),
    ],
)
def test_commands_on_an_unknown_user_fail_cleanly(
    invoke: Invoke, sites: None, args: tuple[str, ...]
) -> None:
    result = invoke("user", *args)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: user not found")
    assert "Traceback" not in result.output
