"""A study's reporting life: the one place that changes ``studies.status`` and its flags.

Every change of status is an event applied through this module, which knows the
allowed transitions (``TRANSITIONS``, tested as a table). Request handlers change one
locked study with ``apply``; jobs that move many rows at once build their UPDATE with
``bulk_update``. The gateway's SQL function ``index_instances`` (``sql/``) applies
``IMAGES_ARRIVED`` in the database for speed; a test holds it to the table below.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Update, func, update

from worklist.enums import StudyFlag, StudyStatus
from worklist.errors import Conflict
from worklist.models import Study

RECEIVING, READY = StudyStatus.RECEIVING, StudyStatus.READY
IN_PROGRESS, REPORTED = StudyStatus.IN_PROGRESS, StudyStatus.REPORTED
CANCELLED = StudyStatus.CANCELLED


class StudyEvent(enum.StrEnum):
    """Something that happens to a study and may change its status."""

    IMAGES_ARRIVED = "images_arrived"
    BECAME_QUIET = "became_quiet"
    CLAIMED = "claimed"
    CLAIM_ENDED = "claim_ended"
    REPORT_SIGNED = "report_signed"
    NEW_IMAGES_ANSWERED = "new_images_answered"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_REINSTATED = "order_reinstated"
    # A second opinion found a major discrepancy with the signed report (flag only).
    DISCREPANCY_FOUND = "discrepancy_found"
    # An addendum to a signed report that does not answer new images (flags only).
    ADDENDUM_ADDED = "addendum_added"


# event -> {status before: status after}; a status missing from an event's map may not
# see that event. Mapping a status to itself is allowed and changes nothing.
TRANSITIONS: Mapping[StudyEvent, Mapping[StudyStatus, StudyStatus]] = {
    # New images reopen a study for reporting; a claimed one stays with its holder, a
    # cancelled one stays cancelled (the images are kept).
    StudyEvent.IMAGES_ARRIVED: {
        RECEIVING: RECEIVING,
        READY: RECEIVING,
        IN_PROGRESS: IN_PROGRESS,
        REPORTED: RECEIVING,
        CANCELLED: CANCELLED,
    },
    StudyEvent.BECAME_QUIET: {RECEIVING: READY},
    StudyEvent.CLAIMED: {READY: IN_PROGRESS, IN_PROGRESS: IN_PROGRESS},
    # Released or expired: back to the worklist (a study that went back to receiving
    # meanwhile stays there).
    StudyEvent.CLAIM_ENDED: {
        IN_PROGRESS: READY,
        RECEIVING: RECEIVING,
        READY: READY,
        CANCELLED: CANCELLED,
    },
    StudyEvent.REPORT_SIGNED: {IN_PROGRESS: REPORTED},
    # An addendum that answers images arriving after signing reports the study again.
    StudyEvent.NEW_IMAGES_ANSWERED: {
        RECEIVING: REPORTED,
        READY: REPORTED,
        IN_PROGRESS: REPORTED,
        REPORTED: REPORTED,
    },
    # The RIS cancelled the order: off the worklist (the caller releases any claim). A
    # reported study keeps its report and status.
    StudyEvent.ORDER_CANCELLED: {
        RECEIVING: CANCELLED,
        READY: CANCELLED,
        IN_PROGRESS: CANCELLED,
        CANCELLED: CANCELLED,
        REPORTED: REPORTED,
    },
    # A new order for a cancelled accession: back through receiving (the worker makes it
    # ready once its images are quiet).
    StudyEvent.ORDER_REINSTATED: {
        CANCELLED: RECEIVING,
        RECEIVING: RECEIVING,
        READY: READY,
        IN_PROGRESS: IN_PROGRESS,
        REPORTED: REPORTED,
    },
    # Flags only: whatever the study's status, it keeps it.
    StudyEvent.DISCREPANCY_FOUND: {status: status for status in StudyStatus},
    StudyEvent.ADDENDUM_ADDED: {status: status for status in StudyStatus},
}

# Flags the events add and clear (the gateway's SQL adds NEW_IMAGES_AFTER_REPORT).
FLAGS_ADDED: Mapping[tuple[StudyEvent, StudyStatus], StudyFlag] = {
    (StudyEvent.IMAGES_ARRIVED, REPORTED): StudyFlag.NEW_IMAGES_AFTER_REPORT,
    **{(StudyEvent.DISCREPANCY_FOUND, s): StudyFlag.MAJOR_DISCREPANCY for s in StudyStatus},
}
# Any addendum answers a major discrepancy; the one answering new images clears both.
FLAGS_CLEARED: Mapping[StudyEvent, tuple[StudyFlag, ...]] = {
    StudyEvent.REPORT_SIGNED: (StudyFlag.NEW_IMAGES_AFTER_REPORT,),
    StudyEvent.NEW_IMAGES_ANSWERED: (
        StudyFlag.NEW_IMAGES_AFTER_REPORT,
        StudyFlag.MAJOR_DISCREPANCY,
    ),
    StudyEvent.ADDENDUM_ADDED: (StudyFlag.MAJOR_DISCREPANCY,),
}

NOT_ALLOWED = "a {status} study cannot be {event}"
_EVENT_WORDS = {
    StudyEvent.IMAGES_ARRIVED: "given images",
    StudyEvent.BECAME_QUIET: "made ready",
    StudyEvent.CLAIMED: "claimed",
    StudyEvent.CLAIM_ENDED: "released",
    StudyEvent.REPORT_SIGNED: "reported",
    StudyEvent.NEW_IMAGES_ANSWERED: "reported again",
    StudyEvent.ORDER_CANCELLED: "cancelled",
    StudyEvent.ORDER_REINSTATED: "reinstated",
    StudyEvent.DISCREPANCY_FOUND: "flagged for a discrepancy",
    StudyEvent.ADDENDUM_ADDED: "given an addendum",
}


class TransitionNotAllowed(Conflict):
    """The study's status does not allow the event."""


def allows(status: StudyStatus, event: StudyEvent) -> bool:
    """Whether a study in ``status`` may see ``event``."""
    return status in TRANSITIONS[event]


def next_status(status: StudyStatus, event: StudyEvent) -> StudyStatus:
    """The status after ``event``; TransitionNotAllowed if the event may not happen."""
    try:
        return TRANSITIONS[event][status]
    except KeyError:
        raise TransitionNotAllowed(
            NOT_ALLOWED.format(status=status.value, event=_EVENT_WORDS[event])
        ) from None


def sources(event: StudyEvent) -> tuple[StudyStatus, ...]:
    """The statuses from which ``event`` actually changes the status."""
    return tuple(before for before, after in TRANSITIONS[event].items() if before != after)


def apply(study: Study, event: StudyEvent) -> StudyStatus:
    """Apply ``event`` to a loaded (and locked) study; the caller's flush writes it."""
    before = study.status
    study.status = next_status(before, event)
    flags = list(study.flags)
    added = FLAGS_ADDED.get((event, before))
    if added is not None and added not in flags:
        flags.append(added)
    cleared = FLAGS_CLEARED.get(event, ())
    flags = [flag for flag in flags if flag not in cleared]
    if flags != list(study.flags):
        study.flags = flags
    return study.status


def bulk_update(event: StudyEvent, *where: ColumnElement[bool]) -> Update:
    """UPDATE applying ``event`` to the studies matching ``where`` that it changes.

    Only for events that do the same to every study they change (promotion, expiry).
    """
    targets = {TRANSITIONS[event][status] for status in sources(event)}
    if len(targets) != 1 or any(added == event for added, _ in FLAGS_ADDED):
        raise ValueError(f"what {event} does depends on the status: apply it study by study")
    values: dict[str, Any] = {"status": targets.pop()}
    flags: ColumnElement[Any] | None = None
    for flag in FLAGS_CLEARED.get(event, ()):
        flags = func.array_remove(Study.flags if flags is None else flags, flag.value)
    if flags is not None:
        values["flags"] = flags
    return update(Study).where(Study.status.in_(sources(event)), *where).values(**values)
