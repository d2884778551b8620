"""Member trusts and their DICOM nodes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, text
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
    # Secret rotation: the previous secret still signs (beside the new one) until then.
    webhook_previous_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_previous_secret_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # Set when the endpoint answered 410 Gone: deliveries wait until a manager re-enables it.
    webhook_disabled_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    webhook_disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Migration 0010: the RIS. Addresses its HL7 may come from (empty: any; facilities are
    # in hl7_senders), and where finished reports go as ORU^R01 over MLLP.
    hl7_hosts: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    ris_host: Mapped[str | None] = mapped_column(Text, nullable=True)
    ris_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Migration 0011: allocation. Studies a radiologist may hold at once (stat and urgent
    # exempt); routine work only through ``worklist/next``; when a study whose subspecialty
    # the reader lacks may go to them ("never", "after_share" of its target elapsed,
    # "always").
    allocation_cap: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    next_only_routine: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    general_reader: Mapped[str] = mapped_column(String(16), server_default=text("'always'"))
    general_after_share: Mapped[float] = mapped_column(Float, server_default=text("0.5"))

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


class NodeGrant(Base):
    """Lets a DICOM node (e.g. a reporting workstation) query and retrieve another site's
    studies (``worklist node grant AET --site CODE``); its own site's it always may."""

    __tablename__ = "node_grants"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("dicom_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    granted_by: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
