"""Query/Retrieve identifiers: what a C-FIND, C-MOVE or C-GET asks for, read and checked.

Only the DIMSE side lives here (the identifier's elements, QueryRetrieveLevel, the unique
keys a retrieval needs, the statuses); what the keys match is ``worklist.matching``'s.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

from dicom_gateway import status
from worklist.matching.values import (
    MATCHING_KEYWORDS,
    InvalidMatch,
    Level,
    Matching,
    parse_matching,
)

# Keys a retrieval must name at its level (Part 4 C.4.2.1.4: unique keys only).
RETRIEVE_UNIQUE_KEY = {
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
_UNIQUE_FIELD = {
    Level.STUDY: "study_uids",
    Level.SERIES: "series_uids",
    Level.IMAGE: "sop_instance_uids",
}


class InvalidIdentifier(Exception):
    """The identifier cannot be answered; ``status`` is the DIMSE failure to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.status = code
        self.reason = reason


def parse_identifier(identifier: Dataset | None, *, retrieve: bool = False) -> Matching:
    """Read a Study Root identifier; ``retrieve`` requires the unique key of its level."""
    if identifier is None:
        raise InvalidIdentifier(status.IDENTIFIER_DOES_NOT_MATCH, "no identifier")
    try:
        level = Level((_text(identifier, "QueryRetrieveLevel") or "").upper())
    except ValueError as exc:
        raise InvalidIdentifier(
            status.IDENTIFIER_DOES_NOT_MATCH, "QueryRetrieveLevel must be STUDY, SERIES or IMAGE"
        ) from exc
    values = {k: _text(identifier, k) for k in MATCHING_KEYWORDS if k in identifier}
    try:
        matching = parse_matching(level, values)
    except InvalidMatch as exc:
        raise _invalid(exc.keyword) from exc
    if retrieve and not getattr(matching, _UNIQUE_FIELD[level]):
        reason = f"a {level} retrieval needs {RETRIEVE_UNIQUE_KEY[level]}"
        raise InvalidIdentifier(status.IDENTIFIER_DOES_NOT_MATCH, reason)
    return matching


def _invalid(keyword: str) -> InvalidIdentifier:
    """A malformed value is refused naming the key, not quoting it."""
    return InvalidIdentifier(status.UNABLE_TO_PROCESS, f"{keyword} has an invalid value")


def _text(identifier: Dataset, keyword: str) -> str:
    """An element's value as matching text: values joined by ``\\``, padding stripped."""
    try:
        element: Any = identifier.get(keyword)
        value = element.value if hasattr(element, "value") else element
        if value is None:
            return ""
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            value = "\\".join(str(v) for v in value)
        return str(value).strip()
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _invalid(keyword) from exc
