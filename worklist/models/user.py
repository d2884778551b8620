"""Users and the sites they hold privileges at."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    """A person or system that calls the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(RoleType)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    sites: Mapped[list[Site]] = relationship(secondary=user_sites, lazy="raise")
