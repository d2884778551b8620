"""Domain enumerations shared by the API, the gateway and the database."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """What a user is allowed to do."""

    RADIOLOGIST = "radiologist"
    MANAGER = "manager"
    ADMIN = "admin"
    ALERT_CLIENT = "alert_client"


class StudyStatus(enum.StrEnum):
    """Where a study is in its reporting life."""

    RECEIVING = "receiving"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    REPORTED = "reported"


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


class AuditAction(enum.StrEnum):
    """What an audit row records."""

    WORKLIST_LIST = "worklist.list"
    STUDY_VIEW = "study.view"
    PRIOR_VIEW = "prior.view"
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


DEFAULT_STATUS_FILTER = (StudyStatus.READY, StudyStatus.IN_PROGRESS)
ROLES_WITH_SINGLE_SITE = (Role.MANAGER, Role.ALERT_CLIENT)
