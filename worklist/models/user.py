"""Users and the sites they hold privileges at."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from worklist.enums import Role
from worklist.models.base import Base, CreatedAtMixin
from worklist.models.site import Site
from worklist.models.types import RoleType

user_sites = Table(
    "user_sites",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class User(CreatedAtMixin, Base):
    """A person or system that calls the API; disabled (``active`` false), never deleted."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(RoleType)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Display name and professional registration (e.g. GMC1234567), as reports name them.
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    registration: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The employing trust (may differ from the sites they report for).
    home_site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    subspecialties: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # Tokens carry it; bumping it (password reset, disable) invalidates every issued token.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    sites: Mapped[list[Site]] = relationship(secondary=user_sites, lazy="raise")
    home_site: Mapped[Site | None] = relationship(foreign_keys=[home_site_id], lazy="raise")
    # Migration 0011: the study grants the user holds, "study_id:reason:reason_id" each;
    # loaded with the account (``worklist.studies.grants.load_grants``), else None.
    grants: Mapped[list[str] | None] = query_expression()
