"""Demand's daily rollup (migration 0013): arrivals and first final reports per closed UTC
day, site and first modality, kept by the worker (``worklist.stats.rollup``).

A rolled day is exact until one of its inputs changes: triggers of migration 0013 then
mark the day (``demand_rollup_marks``), the figures compute a marked day from the live
tables, and the worker rolls it up again.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Identity, Index, Integer, Text
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from worklist.models.base import Base


class DemandRollup(Base):
    """Studies first received and first final reports signed on one UTC day, at one site,
    under one first modality (``''``: the study has none)."""

    __tablename__ = "demand_rollup"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    modality: Mapped[str] = mapped_column(Text, primary_key=True)
    arrivals: Mapped[int] = mapped_column(Integer)
    reports: Mapped[int] = mapped_column(Integer)


class DemandRollupDay(Base):
    """A day the rollup holds (with no row in ``demand_rollup`` when nothing happened)."""

    __tablename__ = "demand_rollup_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rolled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )


class DemandRollupMark(Base):
    """A change to a closed day's inputs, made after the day may have been rolled up: the
    day is computed live until the worker has rolled it up again and removed the mark."""

    __tablename__ = "demand_rollup_marks"
    __table_args__ = (Index("ix_demand_rollup_marks_day", "day"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
