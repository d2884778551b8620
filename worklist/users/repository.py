"""SQL for users and their site privileges."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from worklist.enums import Role
from worklist.models import Site, User


def get_user(session: Session, username: str) -> User | None:
    """The user with this username (sites loaded), or None."""
    return session.scalar(
        select(User).where(User.username == username).options(selectinload(User.sites))
    )


def add_user(
    session: Session, *, username: str, password_hash: str, role: Role, sites: list[Site]
) -> User:
    """Insert a user with privileges at ``sites``."""
    user = User(username=username, password_hash=password_hash, role=role, sites=sites)
    session.add(user)
    session.flush()
    return user
