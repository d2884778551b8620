"""Read what the index needs from a stored instance's header (never its pixel data)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicom_gateway import status
from worklist.enums import Priority
from worklist.identity import normalise_nhs_number
from worklist.timezones import SITE_TIMEZONE
from worklist.uids import is_valid_uid

# Study dates and times in DICOM carry no zone; member trusts are in England.

REQUESTED_PRIORITY = {
    "STAT": Priority.STAT,
    "HIGH": Priority.URGENT,
    "MEDIUM": Priority.INPATIENT,
    "ROUTINE": Priority.ROUTINE,
    "LOW": Priority.ROUTINE,
}

_HEADER_TAGS = [
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyDescription",
    "SeriesDescription",
    "StudyDate",
    "StudyTime",
    "SeriesNumber",
    "InstanceNumber",
    "RequestedProcedurePriority",
    "RequestAttributesSequence",
]


_DECODE_ERRORS = (
    InvalidDicomError,
    OSError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    EOFError,
    OverflowError,
    UnicodeError,
    zlib.error,  # a deflated dataset that does not inflate
)


class InstanceRejected(Exception):
    """The instance cannot be accepted; ``status`` is the DIMSE failure to answer.

    ``reason`` goes to the sender (Error Comment) and says what was wrong with what it sent;
    ``detail`` (internal: exception text, OS errors) is only logged.
    """

    def __init__(self, status_code: int, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.status = status_code
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class InstanceHeader:
    """The indexed attributes of one instance, decoded to Unicode."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    modality: str | None
    patient_name: str
    patient_id: str
    nhs_number: str | None
    birth_date: date | None
    sex: str | None
    accession_number: str | None
    study_description: str | None
    series_description: str | None
    study_datetime: datetime | None
    series_number: int | None
    instance_number: int | None
    requested_priority: Priority | None


def read_header(path: Path, *, expected_sop_instance_uid: str | None) -> InstanceHeader:
    """Parse and validate the header of the file at ``path``; raise InstanceRejected if unusable."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        values = {tag: _element_value(ds, tag) for tag in _HEADER_TAGS[1:]}
        transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    except _DECODE_ERRORS as exc:
        # pydicom's message may quote values (patient data): log only the exception's type.
        raise InstanceRejected(
            status.CANNOT_UNDERSTAND, "dataset cannot be decoded", detail=type(exc).__name__
        ) from exc
    if len(ds) == 0:
        raise InstanceRejected(status.CANNOT_UNDERSTAND, "dataset cannot be decoded: no elements")

    uids = {}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        value = values[keyword]
        if value in (None, ""):
            raise InstanceRejected(status.MISSING_UID, f"{keyword} is missing")
        text = str(value).strip().rstrip("\x00")
        if not is_valid_uid(text):
            raise InstanceRejected(status.INVALID_UID, f"{keyword} is not a valid UID")
        uids[keyword] = text
    if (
        expected_sop_instance_uid is not None
        and uids["SOPInstanceUID"] != expected_sop_instance_uid
    ):
        raise InstanceRejected(
            status.SOP_INSTANCE_MISMATCH,
            "dataset's SOP Instance UID differs from the C-STORE request's",
        )
    patient_id = _text(values["PatientID"]) or f"~{uids['StudyInstanceUID']}"
    return InstanceHeader(
        sop_class_uid=uids["SOPClassUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        modality=_text(values["Modality"]),
        patient_name=_text(values["PatientName"]) or "",
        patient_id=patient_id,
        nhs_number=_find_nhs_number(values),
        birth_date=_dicom_date(_text(values["PatientBirthDate"])),
        sex=_text(values["PatientSex"]),
        accession_number=_text(values["AccessionNumber"]),
        study_description=_text(values["StudyDescription"]),
        series_description=_text(values["SeriesDescription"]),
        study_datetime=_study_datetime(_text(values["StudyDate"]), _text(values["StudyTime"])),
        series_number=_integer(values["SeriesNumber"]),
        instance_number=_integer(values["InstanceNumber"]),
        requested_priority=_requested_priority(values),
    )


def _element_value(ds: Dataset, keyword: str) -> Any:
    element = ds.get(keyword)
    return None if element is None else element


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().rstrip("\x00").strip()
    return text or None


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def _find_nhs_number(values: dict[str, Any]) -> str | None:
    candidates = [_text(values["PatientID"]) or ""]
    candidates += _values(values["OtherPatientIDs"])
    for item in values["OtherPatientIDsSequence"] or []:
        candidates.append(str(item.get("PatientID", "")))
    for candidate in candidates:
        nhs = normalise_nhs_number(candidate)
        if nhs:
            return nhs
    return None


def _requested_priority(values: dict[str, Any]) -> Priority | None:
    raw = [_text(values["RequestedProcedurePriority"])]
    for item in values["RequestAttributesSequence"] or []:
        raw.append(_text(item.get("RequestedProcedurePriority")))
    for text in raw:
        if text and text.upper() in REQUESTED_PRIORITY:
            return REQUESTED_PRIORITY[text.upper()]
    return None


def _dicom_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _study_datetime(day: str | None, time_of_day: str | None) -> datetime | None:
    when = _dicom_date(day)
    if when is None:
        return None
    digits = (time_of_day or "").split(".")[0].replace(":", "")
    digits = (digits + "000000")[:6] if digits.isdigit() else "000000"
    try:
        naive = datetime.strptime(when.strftime("%Y%m%d") + digits, "%Y%m%d%H%M%S")
    except ValueError:
        naive = datetime.combine(when, datetime.min.time())
    return naive.replace(tzinfo=SITE_TIMEZONE)


def _integer(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None
