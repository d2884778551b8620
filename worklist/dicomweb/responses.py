"""How DICOMweb responses are declared in OpenAPI: their real media types, not JSON."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from worklist.api.guard import MAX_DB_INT
from worklist.dicomweb import media
from worklist.dicomweb.query import MAX_LIMIT

DATASETS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "description": "A dataset in the DICOM JSON model (PS3.18 F)"},
}
BINARY_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}


class DicomJsonResponse(JSONResponse):
    """A DICOM JSON body (QIDO-RS results)."""

    media_type = media.DICOM_JSON


class DicomJsonStream(StreamingResponse):
    """A DICOM JSON body written as it is read (WADO-RS metadata)."""

    media_type = media.DICOM_JSON


class MultipartRelated(StreamingResponse):
    """A ``multipart/related`` body (WADO-RS instances, frames and bulk data)."""

    media_type = media.MULTIPART_RELATED


def datasets(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route answering DICOM JSON datasets."""
    return {
        200: {
            "description": description,
            "content": {media.DICOM_JSON: {"schema": DATASETS_SCHEMA}},
        }
    }


def multipart(description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route answering ``multipart/related`` (part types per the Accept header)."""
    return {
        200: {
            "description": description,
            "content": {media.MULTIPART_RELATED: {"schema": BINARY_SCHEMA}},
        }
    }


# Every DICOMweb route checks the caller has a worklist and negotiates from Accept.
ROUTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The account has no worklist (alert clients)"},
    404: {"description": "The study named by ?via= (or in the path) is not visible"},
    406: {"description": "None of the accepted media types can be served (we never transcode)"},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


# As lenient as the parser: items split on "," or "\\", blanks dropped; each item a UID.
_UID_LIST = {"type": "string", "pattern": "^[0-9., \\\\]*$"}
_TEXT = {"type": "string"}
_DAY = "(?:[0-9]{8}|[0-9]{4}[.][0-9]{2}[.][0-9]{2})"  # YYYYMMDD or ACR-NEMA's YYYY.MM.DD
_DASHED_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_NUMBER = {"type": "integer", "minimum": -MAX_DB_INT - 1, "maximum": MAX_DB_INT}
_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "At most this many"),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_DB_INT}, "Skip this many"),
    _query("includefield", {"type": "string"}, "Keywords or tags to return, or `all`"),
    _query("fuzzymatching", {"type": "string"}, "Accepted and ignored: matching is never fuzzy"),
]
_STUDY = [
    _query("StudyInstanceUID", _UID_LIST, "One or more UIDs (comma-separated)"),
    _query("PatientName", _TEXT, "`*` and `?` wildcards, any case"),
    _query("PatientID", _TEXT, "`*` and `?` wildcards"),
    _query("IssuerOfPatientID", _TEXT, "The site code; `*` and `?` wildcards"),
    _query("AccessionNumber", _TEXT, "`*` and `?` wildcards"),
    _query("StudyDescription", _TEXT, "`*` and `?` wildcards, any case"),
    _query(
        "StudyDate",
        {
            "type": "string",
            "pattern": f"^(|{_DAY}|{_DAY}-|-{_DAY}|{_DAY}-{_DAY}|{_DASHED_DAY})$",
        },
        "YYYYMMDD, or a range YYYYMMDD-YYYYMMDD (either end open)",
    ),
    _query("ModalitiesInStudy", _TEXT, "e.g. CT; comma-separated; `*` and `?` wildcards"),
]
_SERIES = [
    _query("SeriesInstanceUID", _UID_LIST, "One or more UIDs (comma-separated)"),
    _query("Modality", _TEXT, "e.g. CT; comma-separated; `*` and `?` wildcards"),
    _query("SeriesNumber", _NUMBER, "Exact match"),
]
_INSTANCES = [
    _query("SOPInstanceUID", _UID_LIST, "One or more UIDs (comma-separated)"),
    _query("SOPClassUID", _UID_LIST, "One or more UIDs (comma-separated)"),
    _query("InstanceNumber", _NUMBER, "Exact match"),
]

# QIDO-RS reads its query string itself (attributes by keyword or tag); these document it.
QIDO_STUDIES: dict[str, Any] = {"parameters": _PAGING + _STUDY}
QIDO_SERIES: dict[str, Any] = {"parameters": _PAGING + _SERIES}
QIDO_ALL_SERIES: dict[str, Any] = {"parameters": _PAGING + _STUDY + _SERIES}
QIDO_INSTANCES: dict[str, Any] = {"parameters": _PAGING + _SERIES + _INSTANCES}
QIDO_ALL_INSTANCES: dict[str, Any] = {"parameters": _PAGING + _STUDY + _SERIES + _INSTANCES}
