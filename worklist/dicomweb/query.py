"""QIDO-RS query parameters: parsed and checked into a ``Matching`` the repository applies."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from pydicom.datadict import dictionary_has_tag, keyword_for_tag, tag_for_keyword

from worklist.api.guard import MAX_DB_INT
from worklist.errors import InvalidInput

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
INCLUDE_ALL = "all"

# Parameters that are not attribute matches.
_CONTROL = frozenset({"limit", "offset", "includefield", "fuzzymatching", "emptymatching", "via"})
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_UID = re.compile(r"^[0-9.]{1,64}$")
_DATE = re.compile(r"^[0-9]{8}$")
_INTEGER = re.compile(r"^-?[0-9]{1,10}$")


@dataclass(frozen=True)
class Matching:
    """Attribute matches of one QIDO-RS request (empty fields match everything).

    Text patterns are SQL LIKE patterns already (DICOM ``*``/``?`` translated, escaped).
    """

    study_uids: tuple[str, ...] = ()
    series_uids: tuple[str, ...] = ()
    sop_instance_uids: tuple[str, ...] = ()
    sop_class_uids: tuple[str, ...] = ()
    patient_name: str | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    study_description: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    modalities_in_study: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    series_number: int | None = None
    instance_number: int | None = None

    def as_audit_detail(self) -> dict[str, object]:
        """The non-empty matches, as JSON for the audit row."""
        detail: dict[str, object] = {}
        for name, value in vars(self).items():
            if value in (None, ()):
                continue
            detail[name] = value.isoformat() if isinstance(value, date) else value
        return detail


@dataclass(frozen=True)
class QidoQuery:
    """A QIDO-RS request: matches, paging and the attributes to return."""

    matching: Matching
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include_all: bool = False
    include_tags: frozenset[str] = frozenset()


def like_pattern(value: str) -> str:
    """A DICOM wildcard match (``*``, ``?``) as an escaped SQL LIKE pattern (escape ``\\``)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _keyword(name: str) -> str:
    if _HEX_TAG.match(name):
        tag = int(name, 16)
        return keyword_for_tag(tag) if dictionary_has_tag(tag) else name.upper()
    return name


def _uid_list(name: str, value: str) -> tuple[str, ...]:
    uids = tuple(u.strip() for u in re.split(r"[,\\]", value) if u.strip())
    for uid in uids:
        if not _UID.match(uid):
            raise InvalidInput(f"{name}: {uid!r} is not a UID")
    return uids


def _code_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip().upper() for v in re.split(r"[,\\]", value) if v.strip())


def _date(name: str, text: str) -> date:
    cleaned = text.replace("-", "") if len(text) == 10 else text
    if not _DATE.match(cleaned):
        raise InvalidInput(f"{name}: {text!r} is not a date (YYYYMMDD)")
    try:
        return datetime.strptime(cleaned, "%Y%m%d").date()
    except ValueError as exc:
        raise InvalidInput(f"{name}: {text!r} is not a date (YYYYMMDD)") from exc


def _date_range(name: str, value: str) -> tuple[date | None, date | None]:
    text = value.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        day = _date(name, text)
        return day, day
    start, dash, end = text.partition("-")
    if not dash:
        day = _date(name, start)
        return day, day
    if not start and not end:
        raise InvalidInput(f"{name}: {value!r} is not a date range (YYYYMMDD-YYYYMMDD)")
    low = _date(name, start) if start else None
    high = _date(name, end) if end else None
    if low and high and low > high:
        raise InvalidInput(f"{name}: range {value!r} ends before it starts")
    return low, high


def _integer(name: str, value: str, *, minimum: int, maximum: int) -> int:
    # ASCII digits only, and few of them: int() would also take "١٢", "1_000" or 4,300 digits.
    if not _INTEGER.match(value):
        raise InvalidInput(f"{name}: not an integer")
    number = int(value)
    if number < minimum or number > maximum:
        raise InvalidInput(f"{name} must be between {minimum} and {maximum}")
    return number


def _include_tags(values: Iterable[str]) -> tuple[bool, frozenset[str]]:
    include_all, tags = False, set()
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            if item.lower() == INCLUDE_ALL:
                include_all = True
            elif _HEX_TAG.match(item):
                tags.add(item.upper())
            elif (tag := tag_for_keyword(item)) is not None:
                tags.add(f"{tag:08X}")
            else:
                raise InvalidInput(f"includefield: {item!r} is not a DICOM keyword or tag")
    return include_all, frozenset(tags)


def parse_query(params: Iterable[tuple[str, str]]) -> QidoQuery:
    """Turn QIDO-RS query parameters into a QidoQuery; InvalidInput for a bad value.

    Attributes we do not index are ignored (PS3.18 lets an origin server skip them).
    """
    values: dict[str, str] = {}
    includes: list[str] = []
    limit, offset = DEFAULT_LIMIT, 0
    for raw_name, value in params:
        name = raw_name if raw_name in _CONTROL else _keyword(raw_name)
        if name == "includefield":
            includes.append(value)
        elif name == "limit":
            limit = _integer("limit", value, minimum=1, maximum=MAX_LIMIT)
        elif name == "offset":
            offset = _integer("offset", value, minimum=0, maximum=MAX_DB_INT)
        elif name not in _CONTROL and value != "":
            values[name] = value
    include_all, include_tags = _include_tags(includes)
    date_from, date_to = (
        _date_range("StudyDate", values["StudyDate"]) if "StudyDate" in values else (None, None)
    )

    def text(keyword: str) -> str | None:
        value = values.get(keyword)
        return like_pattern(value) if value is not None else None

    def number(keyword: str) -> int | None:
        value = values.get(keyword)
        if value is None:
            return None
        return _integer(keyword, value, minimum=-MAX_DB_INT - 1, maximum=MAX_DB_INT)

    matching = Matching(
        study_uids=_uid_list("StudyInstanceUID", values.get("StudyInstanceUID", "")),
        series_uids=_uid_list("SeriesInstanceUID", values.get("SeriesInstanceUID", "")),
        sop_instance_uids=_uid_list("SOPInstanceUID", values.get("SOPInstanceUID", "")),
        sop_class_uids=_uid_list("SOPClassUID", values.get("SOPClassUID", "")),
        patient_name=text("PatientName"),
        patient_id=text("PatientID"),
        accession_number=text("AccessionNumber"),
        study_description=text("StudyDescription"),
        date_from=date_from,
        date_to=date_to,
        modalities_in_study=_code_list(values.get("ModalitiesInStudy", "")),
        modalities=_code_list(values.get("Modality", "")),
        series_number=number("SeriesNumber"),
        instance_number=number("InstanceNumber"),
    )
    return QidoQuery(
        matching=matching,
        limit=limit,
        offset=offset,
        include_all=include_all,
        include_tags=include_tags,
    )
