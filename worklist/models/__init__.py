"""All ORM tables, one module per domain."""

from worklist.models.alerts import Alert, AlertBreach
from worklist.models.audit import AuditEvent
from worklist.models.base import Base
from worklist.models.orders import Hl7Message, Hl7Sender, Order
from worklist.models.outbox import AlertStreamEntry, Delivery, DeliveryAttempt, OutboxMessage
from worklist.models.reporting import Claim, Report, ReportAddendum, ReportVersion
from worklist.models.site import DicomNode, NodeGrant, Site
from worklist.models.stats import DemandRollup, DemandRollupDay, DemandRollupMark
from worklist.models.study import Instance, Patient, Series, Study
from worklist.models.user import User, user_sites
from worklist.models.workforce import (
    DoubleRead,
    DoubleReadingRule,
    RoutingRule,
    SecondOpinion,
    StudyGrant,
    Subspecialty,
)

__all__ = [
    "Alert",
    "AlertBreach",
    "AlertStreamEntry",
    "AuditEvent",
    "Base",
    "Claim",
    "Delivery",
    "DeliveryAttempt",
    "DemandRollup",
    "DemandRollupDay",
    "DemandRollupMark",
    "DicomNode",
    "DoubleRead",
    "DoubleReadingRule",
    "Hl7Message",
    "Hl7Sender",
    "Instance",
    "NodeGrant",
    "Order",
    "OutboxMessage",
    "Patient",
    "Report",
    "ReportAddendum",
    "ReportVersion",
    "RoutingRule",
    "SecondOpinion",
    "Series",
    "Site",
    "Study",
    "StudyGrant",
    "Subspecialty",
    "User",
    "user_sites",
]
