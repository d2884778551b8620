"""Matching values (PS3.4 C.2.2.2) read into one ``Matching``, whichever protocol carried them.

C-FIND reads its keys from an identifier, QIDO-RS from query parameters; both hand the
values over as text, by keyword, and get the same ``Matching`` for the same match.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from worklist.uids import is_valid_uid

LIKE_ESCAPE = "\\"
# IS keys are compared with PostgreSQL ``integer`` columns: anything wider is refused.
INTEGER_MIN = -(2**31)
INTEGER_MAX = 2**31 - 1

# List separators: backslash in DICOM, comma (or backslash) in QIDO-RS. Neither can be
# part of a UID or a code string, so both are read whichever protocol sent the list.
_LIST_SEPARATOR = re.compile(r"[,\\]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# [0-9], not \d: a date or number is ASCII digits (\d also takes "١٢").
_DAY = "[0-9]{8}|[0-9]{4}[.][0-9]{2}[.][0-9]{2}"  # YYYYMMDD, or ACR-NEMA's YYYY.MM.DD
_ONE_DAY = re.compile(f"^(?:{_DAY}|[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})$")  # or ISO YYYY-MM-DD
_DAY_RANGE = re.compile(f"^({_DAY})?-({_DAY})?$")
_INTEGER = re.compile(r"^-?[0-9]{1,10}$")


class Level(enum.StrEnum):
    """Query levels (Study Root), the value being DICOM's QueryRetrieveLevel."""

    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    def reaches(self, other: Level) -> bool:
        """True when the keys of level ``other`` narrow a query at this level."""
        return _DEPTH[other] <= _DEPTH[self]


_DEPTH = {Level.STUDY: 0, Level.SERIES: 1, Level.IMAGE: 2}


class InvalidMatch(ValueError):
    """A matching value that cannot be used: ``keyword`` names the key, ``reason`` says why."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


@dataclass(frozen=True)
class DateRange:
    """Site-local days from ``start`` to ``end``, both included; either end may be open."""

    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Matching:
    """What a query matches at its level; an empty field (None, ``()``) matches everything.

    Text fields hold the value as given: ``*`` and ``?`` are wildcards, every other
    character (``%``, ``_``, ``\\``) is itself. PatientName and StudyDescription match
    without regard to case, the others exactly. A list matches any of its values. Keys of
    levels below ``level`` are never set.
    """

    level: Level = Level.STUDY
    study_uids: tuple[str, ...] = ()
    patient_name: str | None = None
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    accession_number: str | None = None
    study_description: str | None = None
    study_date: DateRange | None = None
    modalities_in_study: tuple[str, ...] = ()
    series_uids: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    series_number: int | None = None
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uids: tuple[str, ...] = ()
    instance_number: int | None = None


def has_wildcards(value: str) -> bool:
    """True when ``value`` has a DICOM wildcard (``*`` or ``?``)."""
    return "*" in value or "?" in value


def like_pattern(value: str) -> str:
    """``value`` as a SQL LIKE pattern (escape ``\\``): ``*`` is ``%``, ``?`` is ``_``."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def parse_integer(
    keyword: str, text: str, *, minimum: int = INTEGER_MIN, maximum: int = INTEGER_MAX
) -> int:
    """An integer of ASCII digits within ``minimum``..``maximum``; InvalidMatch otherwise."""
    # Few ASCII digits only: int() would also take "١٢", "1_000" or 4,300 digits.
    if not _INTEGER.match(text):
        raise InvalidMatch(keyword, "not an integer")
    number = int(text)
    if not minimum <= number <= maximum:
        raise InvalidMatch(keyword, f"must be between {minimum} and {maximum}")
    return number


def parse_matching(level: Level, values: Mapping[str, str]) -> Matching:
    """The Matching of ``values`` (keyword: value as text) for a query at ``level``.

    Every value is checked (InvalidMatch); keywords we do not match on and keys of
    levels below ``level`` are left out; an empty value (and, for text and codes, ``*``)
    is a universal match.
    """
    found: dict[str, Any] = {}
    for keyword, text in values.items():
        key = _KEYS.get(keyword)
        if key is None:
            continue
        if _CONTROL.search(text):
            raise InvalidMatch(keyword, "contains a control character")
        value = key.read(keyword, text)
        if level.reaches(key.level) and value is not None and value != ():
            found[key.field] = value
    return Matching(level=level, **found)


def _universal(value: str) -> bool:
    return value.strip("*") == ""


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in _LIST_SEPARATOR.split(text) if item.strip())


def _text(keyword: str, text: str) -> str | None:
    return None if _universal(text) else text


def _codes(keyword: str, text: str) -> tuple[str, ...]:
    codes = tuple(code.upper() for code in _items(text))
    return () if any(_universal(code) for code in codes) else codes


def _uids(keyword: str, text: str) -> tuple[str, ...]:
    # No wildcards in UIDs (PS3.4 C.2.2.2.2, list of UID matching): anything else is refused.
    uids = _items(text)
    for uid in uids:
        if not is_valid_uid(uid):
            raise InvalidMatch(keyword, f"{uid[:70]!r} is not a UID")
    return uids


def _integer(keyword: str, text: str) -> int | None:
    return parse_integer(keyword, text) if text else None


def _day(keyword: str, text: str) -> date:
    digits = text.replace(".", "").replace("-", "")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise InvalidMatch(keyword, f"{text!r} is not a date (YYYYMMDD)") from exc


def _dates(keyword: str, text: str) -> DateRange | None:
    value = text.strip()
    if not value:
        return None
    if _ONE_DAY.match(value):
        day = _day(keyword, value)
        return DateRange(day, day)
    found = _DAY_RANGE.match(value)
    if found is None or not (found[1] or found[2]):
        reason = f"{value!r} is not a date (YYYYMMDD) or a date range (YYYYMMDD-YYYYMMDD)"
        raise InvalidMatch(keyword, reason)
    start = _day(keyword, found[1]) if found[1] else None
    end = _day(keyword, found[2]) if found[2] else None
    if start and end and start > end:
        raise InvalidMatch(keyword, f"range {value!r} ends before it starts")
    return DateRange(start, end)


@dataclass(frozen=True)
class _Key:
    field: str
    level: Level
    read: Callable[[str, str], Any]


_KEYS = {
    "StudyInstanceUID": _Key("study_uids", Level.STUDY, _uids),
    "PatientName": _Key("patient_name", Level.STUDY, _text),
    "PatientID": _Key("patient_id", Level.STUDY, _text),
    "IssuerOfPatientID": _Key("issuer_of_patient_id", Level.STUDY, _text),
    "AccessionNumber": _Key("accession_number", Level.STUDY, _text),
    "StudyDescription": _Key("study_description", Level.STUDY, _text),
    "StudyDate": _Key("study_date", Level.STUDY, _dates),
    "ModalitiesInStudy": _Key("modalities_in_study", Level.STUDY, _codes),
    "SeriesInstanceUID": _Key("series_uids", Level.SERIES, _uids),
    "Modality": _Key("modalities", Level.SERIES, _codes),
    "SeriesNumber": _Key("series_number", Level.SERIES, _integer),
    "SOPInstanceUID": _Key("sop_instance_uids", Level.IMAGE, _uids),
    "SOPClassUID": _Key("sop_class_uids", Level.IMAGE, _uids),
    "InstanceNumber": _Key("instance_number", Level.IMAGE, _integer),
}
# The keys both protocols match on (any other key is returned, never matched).
MATCHING_KEYWORDS = frozenset(_KEYS)
