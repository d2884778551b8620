"""Worklist and study payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from worklist.dicomweb.dicomjson import study_url
from worklist.enums import DEFAULT_STATUS_FILTER, PatientSource, Priority, StudyFlag, StudyStatus
from worklist.models import Series, Site, Study
from worklist.opinions.schemas import SecondOpinionSummary
from worklist.orders.schemas import OrderOut
from worklist.subspecialties.schemas import SubspecialtyCode

if TYPE_CHECKING:
    from worklist.studies.repository import WorklistRow

ReportStatus = Literal["draft", "final", "amended"]


@dataclass(frozen=True)
class WorklistFilters:
    """The worklist's filters, shared by the list and (later) ``worklist/next``."""

    statuses: tuple[StudyStatus, ...] = DEFAULT_STATUS_FILTER
    sites: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    patient_sources: tuple[PatientSource, ...] = ()
    q: str | None = None
    mine: bool = False

    def as_audit_detail(self) -> dict[str, Any]:
        """The filters as JSON for the audit row."""
        return {
            "status": [s.value for s in self.statuses],
            "site": list(self.sites),
            "modality": list(self.modalities),
            "priority": [p.value for p in self.priorities],
            "patient_source": [p.value for p in self.patient_sources],
            "q": self.q,
            "mine": self.mine,
        }


class SiteRef(BaseModel):
    """A member trust, as shown next to its studies."""

    code: str
    name: str

    @classmethod
    def from_site(cls, site: Site) -> SiteRef:
        """Build from the ORM row."""
        return cls(code=site.code, name=site.name)


class PatientOut(BaseModel):
    """The patient a study is of."""

    name: str
    nhs_number: str | None
    local_id: str
    birth_date: date | None
    sex: str | None


class ClaimOut(BaseModel):
    """Who is reporting a study and until when their lease runs."""

    username: str
    expires_at: AwareDatetime


def _order_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "placer_order_number": row["order_placer_order_number"],
        "filler_order_number": row["order_filler_order_number"],
        "procedure_code": row["order_procedure_code"],
        "procedure_name": row["order_procedure_name"],
        "indication": row["order_indication"],
        "referrer": {
            "name": row["order_referrer_name"],
            "code": row["order_referrer_code"],
            "organisation": row["order_referrer_organisation"],
        },
        "patient_source": row["order_patient_source"],
        "requested_at": row["order_requested_at"],
    }


class WorklistItem(BaseModel):
    """One study on the worklist."""

    study_uid: str
    site: SiteRef
    accession_number: str | None
    patient: PatientOut
    modalities: list[str]
    description: str | None
    study_datetime: AwareDatetime | None
    received_at: AwareDatetime
    series_count: int
    instance_count: int
    priority: Priority
    due_at: AwareDatetime
    status: StudyStatus
    claim: ClaimOut | None = None
    report_status: ReportStatus | None = None
    flags: list[str] = Field(
        description="Stored flags, and ``no_order`` while no RIS order has matched the study"
    )
    order: OrderOut | None = Field(
        description="The RIS order the study matched, or null (flag ``no_order``)"
    )
    subspecialty: str | None = Field(
        default=None, description="The subspecialty it is routed to (GET /api/v1/subspecialties)"
    )
    subspecialty_rule: int | None = Field(
        default=None,
        description="Position of the routing rule that gave it; null when a manager set it "
        "by hand (or no rule matched)",
    )

    @staticmethod
    def fields_from_columns(row: Mapping[Any, Any]) -> dict[str, Any]:
        """The item's fields from a row of ``repository.WORKLIST_COLUMNS``, unvalidated.

        The one builder of an item: the list, ``next``, triage, a study's and a prior's
        detail all read the study through those columns, so each shows the same order and
        flags (``no_order`` is added here, never stored).

        The response model validates them once on the way out; building models here
        as well would validate every field twice.
        """
        claimed_by, expires_at = row["claimed_by"], row["claim_expires_at"]
        return {
            "study_uid": row["study_uid"],
            "site": {"code": row["site_code"], "name": row["site_name"]},
            "accession_number": row["accession_number"],
            "patient": {
                "name": row["patient_name"],
                "nhs_number": row["nhs_number"],
                "local_id": row["local_id"],
                "birth_date": row["birth_date"],
                "sex": row["sex"],
            },
            "modalities": row["modalities"],
            "description": row["description"],
            "study_datetime": row["study_datetime"],
            "received_at": row["received_at"],
            "series_count": row["series_count"],
            "instance_count": row["instance_count"],
            "priority": row["priority"],
            "due_at": row["due_at"],
            "status": row["status"],
            "claim": (
                {"username": claimed_by, "expires_at": expires_at}
                if claimed_by is not None and expires_at is not None
                else None
            ),
            "report_status": row["report_status"],
            "flags": (
                [*row["flags"], StudyFlag.NO_ORDER.value]
                if row["order_id"] is None
                else row["flags"]
            ),
            "order": None if row["order_id"] is None else _order_fields(row),
            "subspecialty": row["subspecialty"],
            "subspecialty_rule": row["subspecialty_rule"],
        }


class WorklistPage(BaseModel):
    """A page of the worklist; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[WorklistItem]
    next_cursor: str | None


class SeriesOut(BaseModel):
    """A series of a study."""

    series_uid: str
    modality: str | None
    description: str | None
    number: int | None
    instance_count: int

    @classmethod
    def from_series(cls, series: Series) -> SeriesOut:
        """Build from the ORM row."""
        return cls(
            series_uid=series.series_uid,
            modality=series.modality,
            description=series.description,
            number=series.number,
            instance_count=series.instance_count,
        )


PRIOR_PATH = "/api/v1/studies/{study_uid}/priors/{prior_uid}"


class PriorLinks(BaseModel):
    """Where to open a prior through the study it is listed on (the ``via`` study)."""

    detail: str = Field(description="API path of the prior's detail")
    report: str = Field(description="API path of the prior's signed report")
    dicomweb: str = Field(description="The prior's WADO-RS URL, with ``?via=`` the study")

    @classmethod
    def build(cls, *, base_url: str, study_uid: str, prior_uid: str) -> PriorLinks:
        """The links of ``prior_uid`` reached through ``study_uid``."""
        detail = PRIOR_PATH.format(study_uid=quote(study_uid), prior_uid=quote(prior_uid))
        via = urlencode({"via": study_uid})
        return cls(
            detail=detail,
            report=f"{detail}/report",
            dicomweb=f"{study_url(base_url, quote(prior_uid))}?{via}",
        )


class PriorStudy(BaseModel):
    """Another study of the same patient, at any trust of the network."""

    study_uid: str
    site: SiteRef
    study_datetime: AwareDatetime | None
    modalities: list[str]
    description: str | None
    accession_number: str | None
    status: StudyStatus
    report_status: ReportStatus | None = None
    links: PriorLinks | None = None

    @classmethod
    def from_row(cls, row: WorklistRow) -> PriorStudy:
        """Build from a worklist row (study loaded with its site)."""
        study = row.study
        return cls(
            study_uid=study.study_uid,
            site=SiteRef.from_site(study.site),
            study_datetime=study.study_datetime,
            modalities=list(study.modalities),
            description=study.description,
            accession_number=study.accession_number,
            status=study.status,
            report_status=row.report_status.value if row.report_status else None,
        )


class ReceivedPatient(BaseModel):
    """The patient demographics a study's images carry, where they differ from its patient's."""

    name: str | None
    birth_date: date | None
    sex: str | None

    @classmethod
    def of_mismatched(cls, study: Study) -> ReceivedPatient | None:
        """What the study was received with, when it is flagged demographic_mismatch."""
        if StudyFlag.DEMOGRAPHIC_MISMATCH not in study.flags:
            return None
        return cls(
            name=study.received_patient_name,
            birth_date=study.received_patient_birth_date,
            sex=study.received_patient_sex,
        )


class StudyDetail(WorklistItem):
    """A study with its series and the patient's priors across the network."""

    series: list[SeriesOut]
    priors: list[PriorStudy]
    received_patient: ReceivedPatient | None = Field(
        default=None,
        description="Set when the study is flagged ``demographic_mismatch``: the name, birth "
        "date and sex its images carry (``patient`` is the site's record for the local ID).",
    )
    dicomweb_url: str | None = Field(
        default=None,
        description="Where to fetch the images: the study's WADO-RS URL (its QIDO-RS and "
        "metadata resources hang off the same ``/dicomweb`` root), same bearer token.",
    )
    second_opinions: list[SecondOpinionSummary] = Field(
        default_factory=list,
        description="The study's second opinions, oldest first "
        "(``GET /api/v1/second-opinions/{id}`` for the question and answer)",
    )


class PriorDetail(WorklistItem):
    """A prior opened through a study it is listed on: a study's detail without priors."""

    via: str = Field(description="The study the prior was reached through")
    series: list[SeriesOut]
    dicomweb_url: str | None = Field(
        default=None, description="The prior's WADO-RS URL; ``?via=`` is part of it"
    )
    links: PriorLinks | None = None


class TriageRequest(BaseModel):
    """``PATCH /studies/{study_uid}``: a manager or admin sets the clinical priority and
    or the subspecialty (``null``: back to the routing rules); absent fields stay."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    subspecialty: SubspecialtyCode | None = None
