"""Worklist and study payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from worklist.dicomweb.dicomjson import study_url
from worklist.enums import DEFAULT_STATUS_FILTER, Priority, StudyFlag, StudyStatus
from worklist.models import Patient, Series, Site, Study

if TYPE_CHECKING:
    from sqlalchemy.engine import RowMapping

    from worklist.studies.repository import WorklistRow

ReportStatus = Literal["draft", "final", "amended"]


@dataclass(frozen=True)
class WorklistFilters:
    """The worklist's filters, shared by the list and (later) ``worklist/next``."""

    statuses: tuple[StudyStatus, ...] = DEFAULT_STATUS_FILTER
    sites: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    q: str | None = None
    mine: bool = False

    def as_audit_detail(self) -> dict[str, Any]:
        """The filters as JSON for the audit row."""
        return {
            "status": [s.value for s in self.statuses],
            "site": list(self.sites),
            "modality": list(self.modalities),
            "priority": [p.value for p in self.priorities],
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

    @classmethod
    def from_patient(cls, patient: Patient) -> PatientOut:
        """Build from the ORM row."""
        return cls(
            name=patient.name,
            nhs_number=patient.nhs_number,
            local_id=patient.local_id,
            birth_date=patient.birth_date,
            sex=patient.sex,
        )


class ClaimOut(BaseModel):
    """Who is reporting a study and until when their lease runs."""

    username: str
    expires_at: AwareDatetime

    @classmethod
    def from_parts(cls, username: str | None, expires_at: datetime | None) -> ClaimOut | None:
        """The claim shown on a worklist row, or None when nobody holds the study."""
        if username is None or expires_at is None:
            return None
        return cls(username=username, expires_at=expires_at)


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
    flags: list[str]

    @classmethod
    def fields_from_study(cls, study: Study) -> dict[str, Any]:
        """The item's fields from a study loaded with its site and patient."""
        return {
            "study_uid": study.study_uid,
            "site": SiteRef.from_site(study.site),
            "accession_number": study.accession_number,
            "patient": PatientOut.from_patient(study.patient),
            "modalities": list(study.modalities),
            "description": study.description,
            "study_datetime": study.study_datetime,
            "received_at": study.received_at,
            "series_count": study.series_count,
            "instance_count": study.instance_count,
            "priority": study.priority,
            "due_at": study.due_at,
            "status": study.status,
            "flags": list(study.flags),
        }

    @staticmethod
    def fields_from_columns(row: RowMapping) -> dict[str, Any]:
        """The item's fields from a row of ``repository.WORKLIST_COLUMNS``, unvalidated.

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
            "flags": row["flags"],
        }

    @classmethod
    def fields_from_row(cls, row: WorklistRow) -> dict[str, Any]:
        """The item's fields from a worklist row (study, claim and report status)."""
        return {
            **cls.fields_from_study(row.study),
            "claim": ClaimOut.from_parts(row.claimed_by, row.claim_expires_at),
            "report_status": row.report_status.value if row.report_status else None,
        }

    @classmethod
    def from_study(cls, study: Study) -> WorklistItem:
        """Build from a study loaded with its site and patient (no claim or report shown)."""
        return cls(**cls.fields_from_study(study))

    @classmethod
    def from_row(cls, row: WorklistRow) -> WorklistItem:
        """Build from a worklist row."""
        return cls(**cls.fields_from_row(row))


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


class PriorDetail(WorklistItem):
    """A prior opened through a study it is listed on: a study's detail without priors."""

    via: str = Field(description="The study the prior was reached through")
    series: list[SeriesOut]
    dicomweb_url: str | None = Field(
        default=None, description="The prior's WADO-RS URL; ``?via=`` is part of it"
    )
    links: PriorLinks | None = None


class TriageRequest(BaseModel):
    """``PATCH /studies/{study_uid}``: a manager or admin sets the clinical priority."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority
