"""Rules for accounts: the role/site combinations, and the profile fields' values.

Who may change whose account lives in ``worklist.users.accounts``; this module only
knows what a valid account looks like, for creating one and for every later change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.auth.passwords import PasswordCost, hash_password
from worklist.enums import ROLES_WITH_SINGLE_SITE, Role
from worklist.errors import Conflict, InvalidInput
from worklist.models import Site, User
from worklist.sites.repository import get_site_by_code
from worklist.subspecialties.service import check_codes
from worklist.users import repository
from worklist.users.registration import normalise_registration
from worklist.users.schemas import MAX_NAME_LENGTH

MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 64


def check_password(password: str) -> str:
    """The password if it is long enough to use."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def check_role_sites(role: Role, site_codes: Sequence[str]) -> None:
    """The role's site rules: radiologists one site at least, managers and alert clients
    exactly one, admins none (network-wide)."""
    if role in ROLES_WITH_SINGLE_SITE and len(site_codes) != 1:
        raise InvalidInput(f"a {role.value} belongs to exactly one site (--site CODE)")
    if role is Role.RADIOLOGIST and not site_codes:
        raise InvalidInput("a radiologist needs reporting privileges at one site at least")
    if role is Role.ADMIN and site_codes:
        raise InvalidInput("an admin is network-wide: give no --site")


def check_name(name: str | None) -> str | None:
    """A display name stripped of surrounding space (None when blank)."""
    if name is None:
        return None
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH or any(not ch.isprintable() for ch in cleaned):
        raise InvalidInput(f"name must be at most {MAX_NAME_LENGTH} printable characters")
    return cleaned or None


def check_registration(registration: str | None) -> str | None:
    """The canonical registration number, or None when blank."""
    if registration is None or not registration.strip():
        return None
    return normalise_registration(registration)


async def check_subspecialties(session: AsyncSession, codes: Iterable[str]) -> list[str]:
    """Active codes of the network's vocabulary, de-duplicated in the order given."""
    return await check_codes(session, codes)


async def sites_by_code(session: AsyncSession, codes: Iterable[str]) -> list[Site]:
    """The sites with these codes, in order, without repeats; InvalidInput for an unknown one."""
    sites = []
    for code in dict.fromkeys(codes):
        site = await get_site_by_code(session, code)
        if site is None:
            raise InvalidInput(f"no site with code {code!r}")
        sites.append(site)
    return sites


async def create_user(
    *,
    session: AsyncSession,
    username: str,
    password: str,
    password_cost: PasswordCost,
    role: Role,
    site_codes: list[str],
    name: str | None = None,
    registration: str | None = None,
    home_site_code: str | None = None,
    subspecialties: Sequence[str] = (),
) -> User:
    """Create a user after checking the role's site rules, the profile and the password."""
    if not 0 < len(username) <= MAX_USERNAME_LENGTH or username != username.strip():
        raise InvalidInput(f"username must be 1-{MAX_USERNAME_LENGTH} characters, no edge spaces")
    check_password(password)
    codes = list(dict.fromkeys(site_codes))
    check_role_sites(role, codes)
    clean_name = check_name(name)
    clean_registration = check_registration(registration)
    clean_subspecialties = await check_subspecialties(session, subspecialties)
    if await repository.get_user(session, username) is not None:
        raise Conflict(f"user {username!r} already exists")
    sites = await sites_by_code(session, codes)
    home_site = (await sites_by_code(session, [home_site_code]))[0] if home_site_code else None
    return await repository.add_user(
        session,
        username=username,
        # Argon2 is deliberately slow: off the event loop.
        password_hash=await asyncio.to_thread(hash_password, password, cost=password_cost),
        role=role,
        sites=sites,
        name=clean_name,
        registration=clean_registration,
        home_site=home_site,
        subspecialties=clean_subspecialties,
    )
