"""Response shapes of ``/api/v1/stats/...`` (DESIGN, "Network performance").

Each figure carries the fields DESIGN names for the caller's sites, and ``network``: the
same figure over every site of the network with the site summed away (``site`` null), so a
manager sees their own site beside the network's totals without another trust's detail.
"""

from __future__ import annotations

import enum
from datetime import date

from pydantic import BaseModel, Field

from worklist.enums import AlertCategory, Priority
from worklist.studies.schemas import WorklistItem


class Grouping(enum.StrEnum):
    """What ``/stats/turnaround`` groups by (``group_by``, repeatable)."""

    SITE = "site"
    MODALITY = "modality"
    PRIORITY = "priority"
    PATIENT_SOURCE = "patient_source"
    WEEK = "week"
    MONTH = "month"


class AgeBand(enum.StrEnum):
    """How long an unreported study has waited since its examination."""

    UNDER_1D = "<1d"
    D1_3 = "1-3d"
    D3_7 = "3-7d"
    D7_28 = "7-28d"
    OVER_28D = ">28d"


class TurnaroundGroup(BaseModel):
    """Examination to first final report, for the studies of one group."""

    key: dict[str, str | None] = Field(
        description="The group's value of each group_by dimension (week: its Monday, "
        "month: YYYY-MM; null: none, e.g. a study without an order has no patient_source)"
    )
    count: int = Field(description="Studies examined in the period and reported")
    p50_hours: float | None
    p90_hours: float | None
    p95_hours: float | None
    within_target_share: float | None = Field(
        description="Share reported within their priority's turnaround target"
    )
    over_28_days: int = Field(description="Reported more than 28 days after the examination")


class Turnaround(BaseModel):
    """``GET /stats/turnaround``."""

    groups: list[TurnaroundGroup]
    network: list[TurnaroundGroup] = Field(
        description="The same groups over the whole network, without the site dimension"
    )


class Breaches(BaseModel):
    """``GET /stats/breaches``: unreported studies examined more than 28 days ago."""

    items: list[WorklistItem] = Field(description="Oldest examination first, at most ``limit``")
    count: int = Field(description="All such studies at the caller's sites")
    network_count: int = Field(description="All such studies in the network")


class BacklogCell(BaseModel):
    """Unreported studies of one site, priority and age band."""

    site: str | None
    priority: Priority
    age_band: AgeBand
    count: int


class BacklogFigures(BaseModel):
    """The backlog of a set of sites."""

    cells: list[BacklogCell]
    due_24h: int = Field(description="Unreported, due within the next 24 hours")
    overdue: int = Field(description="Unreported, past their due time")


class Backlog(BacklogFigures):
    """``GET /stats/backlog``."""

    network: BacklogFigures


class DemandDay(BaseModel):
    """Arrivals and final reports of one day, site and modality."""

    date: date
    site: str | None
    modality: str | None
    arrivals: int
    reports: int


class DemandFigures(BaseModel):
    """Demand and capacity of a set of sites."""

    days: list[DemandDay]
    days_to_clear: float | None = Field(
        description="Today's backlog over the mean final reports per day of the last 28 "
        "days; null when nothing was reported"
    )


class Demand(DemandFigures):
    """``GET /stats/demand``."""

    network: DemandFigures


class FlowCell(BaseModel):
    """Work done in one month on one trust's studies by another trust's radiologists."""

    month: str = Field(description="YYYY-MM")
    origin_site: str | None = Field(description="The study's trust")
    reporting_site: str | None = Field(description="The radiologist's home trust (null: none)")
    reports: int
    second_opinions: int
    double_reads: int


class Flows(BaseModel):
    """``GET /stats/flows``."""

    cells: list[FlowCell]
    network: list[FlowCell] = Field(description="Per month, over the whole network")


class AlertGroup(BaseModel):
    """Acknowledgement of one site's alerts of one category."""

    site: str | None
    category: AlertCategory
    count: int
    acknowledged_within_deadline_share: float | None = Field(
        description="Of the alerts acknowledged or past their first deadline, the share "
        "acknowledged by it"
    )
    ack_p50_minutes: float | None
    ack_p90_minutes: float | None
    escalations: int = Field(description="Alerts escalated at least once")
    breaches: int = Field(description="Missed deadlines recorded (one per escalation)")


class Alerts(BaseModel):
    """``GET /stats/alerts``."""

    groups: list[AlertGroup]
    network: list[AlertGroup] = Field(description="Per category, over the whole network")


class WorkloadRow(BaseModel):
    """Final reports one radiologist signed in one week."""

    username: str
    week: date = Field(description="The week's Monday (UTC)")
    reports: int


class Workload(BaseModel):
    """``GET /stats/workload``."""

    rows: list[WorkloadRow]
