"""C-FIND responses: the requested keys we know, filled from the index row of a match."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from sqlalchemy.engine import RowMapping

from worklist.matching.values import Level, Matching
from worklist.timezones import SITE_TIMEZONE

# Names and descriptions are Unicode in the index: answer in UTF-8.
RESPONSE_CHARACTER_SET = "ISO_IR 192"

# Keys we can fill, by the level whose rows carry them.
_STUDY_KEYS: dict[str, Callable[[RowMapping], Any]] = {
    "PatientName": lambda r: r["patient_name"] or "",
    "PatientID": lambda r: r["patient_id"],
    # Local patient IDs are issued by the site (QIDO answers the same).
    "IssuerOfPatientID": lambda r: r["site_code"],
    "PatientBirthDate": lambda r: _da(r["birth_date"]),
    "PatientSex": lambda r: r["sex"] or "",
    "StudyDate": lambda r: _local(r["study_datetime"], "%Y%m%d"),
    "StudyTime": lambda r: _local(r["study_datetime"], "%H%M%S"),
    "AccessionNumber": lambda r: r["accession_number"] or "",
    "StudyDescription": lambda r: r["study_description"] or "",
    "ModalitiesInStudy": lambda r: list(r["modalities"] or []),
    "NumberOfStudyRelatedSeries": lambda r: r["series_count"],
    "NumberOfStudyRelatedInstances": lambda r: r["study_instance_count"],
}
_SERIES_KEYS: dict[str, Callable[[RowMapping], Any]] = {
    "Modality": lambda r: r["modality"] or "",
    "SeriesDescription": lambda r: r["series_description"] or "",
    "SeriesNumber": lambda r: r["series_number"],
    "NumberOfSeriesRelatedInstances": lambda r: r["series_instance_count"],
}
_IMAGE_KEYS: dict[str, Callable[[RowMapping], Any]] = {
    "SOPClassUID": lambda r: r["sop_class_uid"],
    "InstanceNumber": lambda r: r["instance_number"],
}
_KEYS_BY_LEVEL = {
    Level.STUDY: _STUDY_KEYS,
    Level.SERIES: {**_STUDY_KEYS, **_SERIES_KEYS},
    Level.IMAGE: {**_STUDY_KEYS, **_SERIES_KEYS, **_IMAGE_KEYS},
}
# Set by us whatever the request says.
_CONTROL_KEYS = {"SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle"}


def find_response(row: RowMapping, query: Matching, identifier: Dataset, ae_title: str) -> Dataset:
    """One pending C-FIND response: unique keys, the requested keys we know, the rest empty."""
    ds = Dataset()
    ds.SpecificCharacterSet = RESPONSE_CHARACTER_SET
    ds.QueryRetrieveLevel = query.level.value
    ds.RetrieveAETitle = ae_title
    ds.StudyInstanceUID = row["study_uid"]
    if query.level is not Level.STUDY:
        ds.SeriesInstanceUID = row["series_uid"]
    if query.level is Level.IMAGE:
        ds.SOPInstanceUID = row["sop_instance_uid"]
    known = _KEYS_BY_LEVEL[query.level]
    for element in identifier:
        keyword = element.keyword
        if not keyword or keyword in _CONTROL_KEYS or keyword in ds:
            continue
        value = known[keyword](row) if keyword in known else None
        if value is None:
            # A requested key we cannot fill is returned zero-length (Part 4 C.2.2.1.2).
            ds.add(DataElement(element.tag, element.VR, [] if element.VR == "SQ" else None))
        else:
            setattr(ds, keyword, value)
    return ds


def _da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value is not None else ""


def _local(value: datetime | None, fmt: str) -> str:
    return value.astimezone(SITE_TIMEZONE).strftime(fmt) if value is not None else ""
