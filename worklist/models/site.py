"""Member trusts and their DICOM nodes."""

from __future__ import annotations

from sqlalchemy import ARRAY, Boolean, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from worklist.enums import Priority
from worklist.models.base import Base, CreatedAtMixin
from worklist.models.types import PriorityType


class Site(CreatedAtMixin, Base):
    """A member trust of the imaging network."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(Text)
    default_priority: Mapped[Priority | None] = mapped_column(PriorityType, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    nodes: Mapped[list[DicomNode]] = relationship(back_populates="site", lazy="raise")


class DicomNode(CreatedAtMixin, Base):
    """A DICOM application entity (PACS, modality, workstation) belonging to a site."""

    __tablename__ = "dicom_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    hosts: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))

    site: Mapped[Site] = relationship(back_populates="nodes", lazy="raise")
