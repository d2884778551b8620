"""Rules for creating users (role/site combinations)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from worklist.auth.passwords import hash_password
from worklist.enums import ROLES_WITH_SINGLE_SITE, Role
from worklist.errors import Conflict, InvalidInput, NotFound
from worklist.models import User
from worklist.sites.repository import get_site_by_code
from worklist.users import repository

MIN_PASSWORD_LENGTH = 8


def create_user(
    *, session: Session, username: str, password: str, role: Role, site_codes: list[str]
) -> User:
    """Create a user after checking the role's site rules and the password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if role in ROLES_WITH_SINGLE_SITE and len(site_codes) != 1:
        raise InvalidInput(f"a {role.value} belongs to exactly one site (--site CODE)")
    if role is Role.RADIOLOGIST and not site_codes:
        raise InvalidInput("a radiologist needs reporting privileges at one site at least")
    if role is Role.ADMIN and site_codes:
        raise InvalidInput("an admin is network-wide: give no --site")
    if repository.get_user(session, username) is not None:
        raise Conflict(f"user {username!r} already exists")
    sites = []
    for code in dict.fromkeys(site_codes):
        site = get_site_by_code(session, code)
        if site is None:
            raise NotFound(f"no site with code {code!r}")
        sites.append(site)
    return repository.add_user(
        session, username=username, password_hash=hash_password(password), role=role, sites=sites
    )
