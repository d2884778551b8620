"""Domain enumerations shared by the API, the gateway and the database."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What a user is allowed to do."""

    RADIOLOGIST = "radiologist"
    MANAGER = "manager"
    ADMIN = "admin"
    ALERT_CLIENT = "alert_client"
    # Migration 0010: a trust's RIS posting FHIR ServiceRequests for one site.
    ORDER_CLIENT = "order_client"


class StudyStatus(enum.StrEnum):
    """Where a study is in its reporting life."""

    RECEIVING = "receiving"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    REPORTED = "reported"
    # Migration 0010: its order was cancelled (off the worklist; images still kept).
    CANCELLED = "cancelled"


class Priority(enum.StrEnum):
    """Clinical priority; declaration order is urgency order (PostgreSQL enum order too)."""

    STAT = "stat"
    URGENT = "urgent"
    INPATIENT = "inpatient"
    CANCER_PATHWAY = "cancer_pathway"
    ROUTINE = "routine"


class ReportStatus(enum.StrEnum):
    """Where a report is: a draft, signed (final), or signed and added to (amended)."""

    DRAFT = "draft"
    FINAL = "final"
    AMENDED = "amended"


class StudyFlag(enum.StrEnum):
    """Conditions a reader must notice on a study."""

    NEW_IMAGES_AFTER_REPORT = "new_images_after_report"
    # Set by index_instances (migrations/sql/index_instances_v3.sql).
    DEMOGRAPHIC_MISMATCH = "demographic_mismatch"
    # Not stored: shown on a study that no order from its trust's RIS has matched.
    NO_ORDER = "no_order"
    # Migration 0011: a second opinion found a major discrepancy with the final report;
    # cleared by the next addendum.
    MAJOR_DISCREPANCY = "major_discrepancy"


class AuditAction(enum.StrEnum):
    """What an audit row records."""

    WORKLIST_LIST = "worklist.list"
    STUDY_VIEW = "study.view"
    PRIOR_VIEW = "prior.view"
    PRIOR_REPORT_VIEW = "prior.report.view"
    PRIOR_RETRIEVED = "prior.retrieved"
    PRIOR_QUERIED = "prior.queried"
    # One row per request for the whole monthly extract (detail: month, rows, sites).
    STATS_EXTRACT = "stats.extract"
    INSTANCE_STORED = "instance.stored"
    INSTANCE_REPLACED = "instance.replaced"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN = "auth.login"
    SITE_ADDED = "site.added"
    USER_ADDED = "user.added"
    REINDEX = "index.rebuilt"
    CLAIM_CREATED = "claim.created"
    CLAIM_RENEWED = "claim.renewed"
    CLAIM_RELEASED = "claim.released"
    CLAIM_EXPIRED = "claim.expired"
    STUDY_TRIAGED = "study.triaged"
    REPORT_VIEW = "report.view"
    REPORT_SAVED = "report.saved"
    REPORT_FINALISED = "report.finalised"
    REPORT_ADDENDUM = "report.addendum"
    REPORT_FHIR_VIEW = "report.fhir_view"
    ALERT_RAISED = "alert.raised"
    ALERT_VIEW = "alert.view"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_ESCALATED = "alert.escalated"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_ENABLED = "webhook.enabled"
    WEBHOOK_CHANGED = "webhook.changed"
    WEBHOOK_REMOVED = "webhook.removed"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    NODE_GRANTED = "node.granted"
    NODE_REVOKED = "node.revoked"
    STUDY_RETRIEVED = "study.retrieved"
    STUDY_QUERIED = "study.queried"
    # Written by index_instances (worklist/studies/sql/index_instances_v3.sql).
    STUDY_DEMOGRAPHIC_MISMATCH = "study.demographic_mismatch"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_PRIVILEGE_GRANTED = "user.privilege_granted"
    USER_PRIVILEGE_REVOKED = "user.privilege_revoked"
    USER_PROFILE_CHANGED = "user.profile_changed"
    USER_PASSWORD_RESET = "user.password_reset"
    ORDER_RECEIVED = "order.received"
    ORDER_CHANGED = "order.changed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_MATCHED = "order.matched"
    ORDER_VIEW = "order.view"
    STUDY_CANCELLED = "study.cancelled"
    STUDY_REINSTATED = "study.reinstated"
    # Migration 0011: the pooled workforce.
    SUBSPECIALTY_ADDED = "subspecialty.added"
    SUBSPECIALTY_CHANGED = "subspecialty.changed"
    ROUTING_CHANGED = "routing.changed"
    STUDY_ROUTED = "study.routed"
    ALLOCATION_CHANGED = "site.allocation_changed"
    SECOND_OPINION_REQUESTED = "second_opinion.requested"
    SECOND_OPINION_CLAIMED = "second_opinion.claimed"
    SECOND_OPINION_ANSWERED = "second_opinion.answered"
    SECOND_OPINION_WITHDRAWN = "second_opinion.withdrawn"
    SECOND_OPINION_VIEW = "second_opinion.view"
    DOUBLE_READING_CHANGED = "site.double_reading_changed"
    DOUBLE_READ_CREATED = "double_read.created"
    DOUBLE_READ_CLAIMED = "double_read.claimed"
    DOUBLE_READ_SUBMITTED = "double_read.submitted"
    DOUBLE_READ_VIEW = "double_read.view"
    PEER_REVIEW_STATS_VIEW = "stats.peer_review_view"
    # A network figure (``/stats/...``): aggregates, no patient data.
    STATS_VIEW = "stats.view"
    # The 28-day breach list: patient data, so the detail names the studies shown.
    STATS_BREACHES_VIEW = "stats.breaches_view"


class AlertCategory(enum.StrEnum):
    """Critical-result categories (RCR / Academy of Medical Royal Colleges); urgency order."""

    CRITICAL = "critical"
    URGENT = "urgent"
    SIGNIFICANT_UNEXPECTED = "significant_unexpected"
    CANCER = "cancer"


class AlertStatus(enum.StrEnum):
    """Whether someone at the originating trust has taken the alert."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"


class DeliveryChannel(enum.StrEnum):
    """How an outbox message reaches the originating trust."""

    WEBHOOK = "webhook"
    SSE = "sse"
    # Migration 0010: ORU^R01 over MLLP to the site's RIS.
    HL7 = "hl7"


class DeliveryStatus(enum.StrEnum):
    """Where one delivery of an outbox message is (as stored)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    # Migration 0010: the receiver refused it for good (HL7 AR); shown, never retried.
    FAILED = "failed"


class OutboxEventType(enum.StrEnum):
    """Messages the outbox carries to the originating trust (webhook ``type``, SSE event)."""

    ALERT_RAISED = "alert.raised"
    ALERT_ESCALATED = "alert.escalated"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    REPORT_FINALISED = "report.finalised"
    REPORT_AMENDED = "report.amended"


DEFAULT_STATUS_FILTER = (StudyStatus.READY, StudyStatus.IN_PROGRESS)
ROLES_WITH_SINGLE_SITE = (Role.MANAGER, Role.ALERT_CLIENT, Role.ORDER_CLIENT)


class OrderStatus(enum.StrEnum):
    """Where a RIS order is: live (new, changed or a status update) or cancelled."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class OrderSource(enum.StrEnum):
    """How an order reached us."""

    HL7 = "hl7"
    FHIR = "fhir"


class PatientSource(enum.StrEnum):
    """The setting the patient was referred from (how the NHS splits turnaround)."""

    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    GP = "gp"
    OTHER = "other"


class GeneralReader(enum.StrEnum):
    """A site's rule for handing a study to a reader without its subspecialty (``next``)."""

    NEVER = "never"
    # Once ``general_after_share`` of the time from arrival to its target has elapsed.
    AFTER_SHARE = "after_share"
    ALWAYS = "always"
