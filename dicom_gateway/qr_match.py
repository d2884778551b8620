"""Query/Retrieve identifiers: what a C-FIND, C-MOVE or C-GET asks for, parsed and checked."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from dicom_gateway import status
from worklist.uids import is_valid_uid

# Keys a retrieval must name at its level (Part 4 C.4.2.1.4: unique keys only).
RETRIEVE_UNIQUE_KEY = {
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
T = TypeVar("T")
_UNIQUE_FIELD = {
    "StudyInstanceUID": "study_uids",
    "SeriesInstanceUID": "series_uids",
    "SOPInstanceUID": "sop_uids",
}


class Level(enum.StrEnum):
    """Study Root query levels."""

    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


class InvalidIdentifier(Exception):
    """The identifier cannot be answered; ``status`` is the DIMSE failure to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.status = code
        self.reason = reason


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of study dates; either end may be open."""

    start: date | None
    end: date | None


@dataclass(frozen=True)
class Query:
    """Matching keys of an identifier (None: universal match) and the keys asked for."""

    level: Level
    requested: frozenset[str]
    patient_name: str | None = None
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    accession_number: str | None = None
    study_date: DateRange | None = None
    study_uids: tuple[str, ...] | None = None
    modalities_in_study: tuple[str, ...] | None = None
    series_uids: tuple[str, ...] | None = None
    modality: str | None = None
    sop_uids: tuple[str, ...] | None = None


def parse_identifier(identifier: Dataset | None, *, retrieve: bool = False) -> Query:
    """Read a Study Root identifier; ``retrieve`` requires the unique key of its level."""
    if identifier is None:
        raise InvalidIdentifier(status.IDENTIFIER_DOES_NOT_MATCH, "no identifier")
    try:
        level_text = _text(identifier.get("QueryRetrieveLevel"))
        level = Level((level_text or "").upper())
    except ValueError as exc:
        raise InvalidIdentifier(
            status.IDENTIFIER_DOES_NOT_MATCH, "QueryRetrieveLevel must be STUDY, SERIES or IMAGE"
        ) from exc
    query = Query(
        level=level,
        requested=frozenset(el.keyword for el in identifier if el.keyword),
        patient_name=_key(identifier, "PatientName", _text),
        patient_id=_key(identifier, "PatientID", _text),
        issuer_of_patient_id=_key(identifier, "IssuerOfPatientID", _text),
        accession_number=_key(identifier, "AccessionNumber", _text),
        study_date=_key(identifier, "StudyDate", lambda v: _date_range(_text(v))),
        study_uids=_key(identifier, "StudyInstanceUID", _uids),
        modalities_in_study=_key(identifier, "ModalitiesInStudy", _values),
        series_uids=_key(identifier, "SeriesInstanceUID", _uids),
        modality=_key(identifier, "Modality", _text),
        sop_uids=_key(identifier, "SOPInstanceUID", _uids),
    )
    if retrieve:
        key = RETRIEVE_UNIQUE_KEY[level]
        if not getattr(query, _UNIQUE_FIELD[key]):
            raise InvalidIdentifier(
                status.IDENTIFIER_DOES_NOT_MATCH, f"a {level} retrieval needs {key}"
            )
    return query


def _key(identifier: Dataset, keyword: str, parse: Callable[[Any], T]) -> T:
    """One key's value, parsed; a malformed value is refused naming the key, not quoting it."""
    try:
        return parse(identifier.get(keyword))
    except (ValueError, TypeError, UnicodeError) as exc:
        reason = f"{keyword} has an invalid value"
        raise InvalidIdentifier(status.UNABLE_TO_PROCESS, reason) from exc


def like_pattern(value: str) -> str | None:
    """A SQL LIKE pattern for a DICOM wildcard value (``*``, ``?``); None when it has none."""
    if "*" not in value and "?" not in value:
        return None
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def literal_pattern(value: str) -> str:
    """A SQL LIKE pattern matching ``value`` exactly (for case-insensitive equality)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def is_universal(value: str | None) -> bool:
    """True when a key matches everything: absent, empty or only ``*``."""
    return value is None or value.strip("*") == ""


def _text(element: Any) -> str | None:
    if element is None:
        return None
    value = element.value if hasattr(element, "value") else element
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _values(element: Any) -> tuple[str, ...] | None:
    text = _text(element)
    if text is None:
        return None
    values = tuple(v.strip() for v in text.split("\\") if v.strip())
    return values or None


def _uids(element: Any) -> tuple[str, ...] | None:
    values = _values(element)
    if values is None:
        return None
    # Wildcards are not allowed in UIDs (list of UID matching only): a bad UID matches nothing.
    for uid in values:
        if not is_valid_uid(uid):
            raise ValueError(f"invalid UID {uid[:70]!r}")
    return values


def _date_range(text: str | None) -> DateRange | None:
    if text is None:
        return None
    if "-" not in text:
        day = _date(text)
        return DateRange(day, day)
    start, _, end = text.partition("-")
    if not start.strip() and not end.strip():
        return None
    return DateRange(_date(start) if start.strip() else None, _date(end) if end.strip() else None)


def _date(text: str) -> date:
    digits = text.strip().replace(".", "")
    return datetime.strptime(digits, "%Y%m%d").date()
