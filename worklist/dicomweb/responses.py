"""How DICOMweb responses are declared in OpenAPI: their real media types, not JSON."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from worklist.dicomweb import media

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
    406: {"description": "None of the accepted media types can be served (we never transcode)"},
}
