"""The worklist filters as a query-string dependency, shared by the list and ``worklist/next``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from worklist.enums import DEFAULT_STATUS_FILTER, PatientSource, Priority, StudyStatus
from worklist.studies.schemas import WorklistFilters


async def worklist_filters(
    status: Annotated[
        list[StudyStatus] | None,
        Query(description="Repeatable; default ready and in_progress (cancelled: off the list)"),
    ] = None,
    site: Annotated[list[str] | None, Query(description="Site code; repeatable")] = None,
    modality: Annotated[list[str] | None, Query(description="e.g. CT; repeatable")] = None,
    priority: Annotated[list[Priority] | None, Query(description="Repeatable")] = None,
    patient_source: Annotated[
        list[PatientSource] | None,
        Query(description="Referral setting of the order; repeatable (no order: no match)"),
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Patient name, accession, NHS number or description"),
    ] = None,
    mine: Annotated[bool, Query(description="Only studies the caller has claimed")] = False,
) -> WorklistFilters:
    """The worklist filters from the query string (shared with ``worklist/next``)."""
    return WorklistFilters(
        statuses=tuple(dict.fromkeys(status)) if status else DEFAULT_STATUS_FILTER,
        sites=tuple(dict.fromkeys(site or ())),
        modalities=tuple(dict.fromkeys(m.strip().upper() for m in modality or ())),
        priorities=tuple(dict.fromkeys(priority or ())),
        patient_sources=tuple(dict.fromkeys(patient_source or ())),
        q=(q.strip() or None) if q else None,
        mine=mine,
    )


WorklistFiltersDep = Annotated[WorklistFilters, Depends(worklist_filters)]
