"""The order as the radiologist sees it on a worklist item and a study's detail."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from worklist.enums import PatientSource


class ReferrerOut(BaseModel):
    """Who asked for the examination: the ordering clinician and their organisation."""

    name: str | None
    code: str | None = Field(description="The referrer's code as the RIS sent it (e.g. GMC)")
    organisation: str | None = Field(description="The referring organisation (name, else code)")


class OrderOut(BaseModel):
    """The RIS order a study matched (by site and accession number)."""

    placer_order_number: str | None
    filler_order_number: str | None
    procedure_code: str | None
    procedure_name: str | None
    indication: str | None = Field(description="The clinical question (OBR-13, OBR-31)")
    referrer: ReferrerOut
    patient_source: PatientSource | None = Field(
        description="The setting the patient was referred from"
    )
    requested_at: AwareDatetime | None
