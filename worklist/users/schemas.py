"""Account payloads of ``/api/v1/users``: what a user looks like (never a password hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worklist.enums import Role
from worklist.models import User
from worklist.subspecialties.schemas import SubspecialtyCode

MAX_NAME_LENGTH = 200
MAX_REGISTRATION_INPUT = 32
MAX_PASSWORD_LENGTH = 1024
MAX_SITES = 64

SiteCode = Annotated[str, StringConstraints(min_length=1, max_length=32)]
MAX_SUBSPECIALTIES = 64


class UserOut(BaseModel):
    """An account as admins and managers see it."""

    username: str
    role: Role
    disabled: bool
    name: str | None
    registration: str | None
    home_site: str | None = Field(description="Code of the employing trust")
    sites: list[str] = Field(description="Codes of the sites they hold privileges at")
    subspecialties: list[str] = Field(description="Codes of GET /api/v1/subspecialties")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        """The public view of ``user`` (sites and home site loaded)."""
        return cls(
            username=user.username,
            role=user.role,
            disabled=not user.active,
            name=user.name,
            registration=user.registration,
            home_site=user.home_site.code if user.home_site is not None else None,
            sites=sorted(site.code for site in user.sites),
            subspecialties=list(user.subspecialties),
            created_at=user.created_at,
        )


class UserList(BaseModel):
    """The accounts the caller may manage, by username."""

    users: list[UserOut]


class UserPatch(BaseModel):
    """Changes to an account; absent fields stay as they are, ``null`` clears a text field."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = None
    role: Role | None = None
    sites: list[SiteCode] | None = Field(default=None, max_length=MAX_SITES)
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    registration: str | None = Field(default=None, max_length=MAX_REGISTRATION_INPUT)
    home_site: SiteCode | None = None
    # Codes of the vocabulary table, checked by the service (unknown or retired: 422).
    subspecialties: list[SubspecialtyCode] | None = Field(
        default=None, max_length=MAX_SUBSPECIALTIES
    )


class PasswordIn(BaseModel):
    """A new password set by an admin or manager (at least 8 characters)."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
