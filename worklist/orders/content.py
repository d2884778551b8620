"""What an order says, whichever way it came (HL7 v2 ORM^O01/OMI^O23 or FHIR R4
ServiceRequest): the parsers build an ``OrderContent``; ``service.apply_order`` stores it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from worklist.enums import PatientSource, Priority


class OrderControl(enum.StrEnum):
    """What the message asks (HL7 ORC-1; FHIR status maps onto it)."""

    NEW = "NW"
    CHANGE = "XO"
    CANCEL = "CA"
    DISCONTINUE = "OC"
    STATUS = "SC"

    @property
    def cancels(self) -> bool:
        """Whether the order is cancelled by this control."""
        return self in (OrderControl.CANCEL, OrderControl.DISCONTINUE)


@dataclass(frozen=True)
class PatientIdentifier:
    """One patient identifier as sent (HL7 PID-3 repetition, FHIR ``subject`` identifier)."""

    value: str
    authority: str | None = None
    type: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """The form stored in ``orders.patient_identifiers``."""
        return {"id": self.value, "authority": self.authority, "type": self.type}


@dataclass(frozen=True)
class Referrer:
    """Who asked: the ordering clinician and organisation (ORC-12/OBR-16, ORC-21)."""

    name: str | None = None
    code: str | None = None
    organisation: str | None = None
    organisation_code: str | None = None


# An ODS code of a GP practice: a letter and five digits (e.g. A81001).
_GP_PRACTICE = re.compile(r"^[A-Z][0-9]{5}$")


def is_gp_practice(referrer: Referrer) -> bool:
    """Whether the referring organisation is a GP practice (by its ODS code)."""
    return _GP_PRACTICE.match((referrer.organisation_code or "").upper()) is not None


@dataclass(frozen=True)
class OrderPatient:
    """The patient an order names, as both parsers read it."""

    identifiers: tuple[PatientIdentifier, ...]
    nhs_number: str | None
    local_id: str | None
    name: str | None
    birth_date: date | None


@dataclass(frozen=True)
class OrderContent:
    """One order message's content; ``None`` means the message did not say.

    ``accession_number`` is required (orders match studies by it); ``patient_local_id``
    is the identifier issued by the sending trust, ``nhs_number`` a valid one or None.
    """

    control: OrderControl
    accession_number: str
    placer_order_number: str | None = None
    filler_order_number: str | None = None
    ris_status: str | None = None
    identifiers: tuple[PatientIdentifier, ...] = ()
    patient_local_id: str | None = None
    nhs_number: str | None = None
    patient_name: str | None = None
    patient_birth_date: date | None = None
    procedure_code: str | None = None
    procedure_coding_system: str | None = None
    procedure_name: str | None = None
    priority: Priority | None = None
    ris_priority: str | None = None
    referrer: Referrer = field(default_factory=Referrer)
    patient_source: PatientSource | None = None
    indication: str | None = None
    requested_at: datetime | None = None
