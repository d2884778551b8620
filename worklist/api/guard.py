"""Input guard: what may reach a route at all, and the typed parameters routes declare.

A path or query string that is not clean text (invalid UTF-8, NUL or another control
character) is refused with 400 before routing, so no endpoint, query or log ever sees
it. Where a route expects a DICOM UID the path segment must look like one (digits and
dots, at most 64): anything else names no resource and is 404, as an unknown UID is.
Integers that reach the database are bounded to what its columns hold.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Path, Query
from pydantic import BeforeValidator, Field, WithJsonSchema
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

UID_MAX_LENGTH = 64
UID_REGEX = "[0-9.]{1,64}"
UID_PATTERN = f"^{UID_REGEX}$"
SITE_CODE_REGEX = "[A-Z0-9][A-Z0-9_-]{0,31}"
# PostgreSQL ``integer``: a larger number from a client is out of range, not a server error.
MAX_DB_INT = 2**31 - 1
INVALID_REQUEST_TEXT = (
    "the request path or query string contains invalid UTF-8 or a control character"
)

# C0 controls, DEL and C1 controls: never part of a UID, a code, a name or a search term.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
ISO_DATETIME_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?"
    "(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
_ISO_DATETIME = re.compile(ISO_DATETIME_PATTERN)


class _TextConvertor(Convertor[str]):
    def convert(self, value: str) -> str:
        """The segment as written."""
        return value

    def to_string(self, value: str) -> str:
        """The segment as written."""
        return value


class UidConvertor(_TextConvertor):
    """``{name:uid}`` in a route path: matches a DICOM UID, so anything else is a 404."""

    regex = UID_REGEX


class SiteCodeConvertor(_TextConvertor):
    """``{name:site}`` in a route path: matches a site code, so anything else is a 404."""

    regex = SITE_CODE_REGEX


register_url_convertor("uid", UidConvertor())
register_url_convertor("site", SiteCodeConvertor())

# The convertor decides the match; the annotation documents the same rule in OpenAPI.
UidPath = Annotated[
    str,
    Path(
        pattern=UID_PATTERN,
        max_length=UID_MAX_LENGTH,
        description="A DICOM UID (digits and dots, at most 64); anything else is 404",
    ),
]
SiteCodePath = Annotated[
    str,
    Path(
        pattern=f"^{SITE_CODE_REGEX}$",
        description="A site code (upper-case letters, digits, '-' or '_'); anything else is 404",
    ),
]
# As a filter a non-UID is an invalid value (422), as QIDO-RS answers for its UID matches.
UidQuery = Annotated[
    str | None,
    Query(pattern=UID_PATTERN, max_length=UID_MAX_LENGTH, description="A DICOM UID"),
]
DbInt = Annotated[int, Field(ge=-MAX_DB_INT - 1, le=MAX_DB_INT)]
PositiveDbInt = Annotated[int, Field(ge=1, le=MAX_DB_INT)]


def _iso_8601(value: object) -> object:
    # pydantic would also take 0.5 (a Unix time) or a bare date for a datetime.
    if isinstance(value, str) and not _ISO_DATETIME.fullmatch(value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2030-01-07T09:00:00Z")
    return value


# An ISO 8601 date and time, with or without a zone (none means UTC), and nothing else.
IsoDateTime = Annotated[
    datetime,
    BeforeValidator(_iso_8601),
    WithJsonSchema({"type": "string", "pattern": ISO_DATETIME_PATTERN}),
]

ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_ISO_DATE = re.compile(ISO_DATE_PATTERN)


def _iso_date(value: object) -> object:
    # pydantic would also take 0 (a Unix time) for a date.
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("expected an ISO 8601 date, e.g. 2030-01-07")
    return value


# An ISO 8601 calendar date (YYYY-MM-DD), and nothing else.
IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": ISO_DATE_PATTERN}),
]


def is_clean_text(raw: bytes) -> bool:
    """True when percent-decoded ``raw`` is UTF-8 without control characters."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


def is_clean_query(query: bytes) -> bool:
    """True when every name and value of a query string is clean text (``+`` is a space)."""
    return all(
        is_clean_text(field.replace(b"+", b" "))
        for pair in query.split(b"&")
        for field in pair.split(b"=", 1)
    )


class InputGuardMiddleware:
    """Refuse (400) a request whose path or query string is not clean text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass clean requests through; answer the others with a short JSON 400."""
        if scope["type"] != "http" or self._clean(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": INVALID_REQUEST_TEXT}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _clean(scope: Scope) -> bool:
        raw_path = scope.get("raw_path")
        if raw_path is not None:
            path_ok = is_clean_text(raw_path)
        else:
            path: str = scope["path"]
            path_ok = _CONTROL.search(path) is None
        return path_ok and is_clean_query(scope.get("query_string", b""))
