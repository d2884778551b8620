"""QIDO-RS query parameters: paging, includefield, and the matching keys by name or tag.

What the keys match is ``worklist.matching``'s (the same as C-FIND's); this module only
reads the query string and words the 422 for a value that cannot be used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date

from pydicom.datadict import dictionary_has_tag, keyword_for_tag, tag_for_keyword

from worklist.api.guard import MAX_DB_INT
from worklist.errors import InvalidInput
from worklist.matching.values import (
    InvalidMatch,
    Level,
    Matching,
    like_pattern,
    parse_integer,
    parse_matching,
)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
INCLUDE_ALL = "all"

# Parameters that are not attribute matches.
_CONTROL = frozenset({"limit", "offset", "includefield", "fuzzymatching", "emptymatching", "via"})
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


@dataclass(frozen=True)
class QidoQuery:
    """A QIDO-RS request: matches, paging and the attributes to return."""

    matching: Matching
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    include_all: bool = False
    include_tags: frozenset[str] = frozenset()


def audit_detail(matching: Matching) -> dict[str, object]:
    """The matches that narrow, as JSON for the audit row.

    Text keys are written as their SQL LIKE patterns and dates as ``date_from`` and
    ``date_to``, as the audit has always recorded them.
    """
    detail: dict[str, object] = {}
    for field in fields(matching):
        value = getattr(matching, field.name)
        if field.name == "level" or value is None or value == ():
            continue
        if field.name == "study_date":
            for name, day in (("date_from", value.start), ("date_to", value.end)):
                if isinstance(day, date):
                    detail[name] = day.isoformat()
        elif isinstance(value, str):
            detail[field.name] = like_pattern(value)
        else:
            detail[field.name] = list(value) if isinstance(value, tuple) else value
    return detail


def _keyword(name: str) -> str:
    if _HEX_TAG.match(name):
        tag = int(name, 16)
        return keyword_for_tag(tag) if dictionary_has_tag(tag) else name.upper()
    return name


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


def parse_query(params: Iterable[tuple[str, str]], *, level: Level) -> QidoQuery:
    """Turn QIDO-RS query parameters into a QidoQuery at ``level``; InvalidInput for a bad value.

    Attributes we do not match on are ignored (PS3.18 lets an origin server skip them);
    of a repeated attribute the last value counts.
    """
    values: dict[str, str] = {}
    includes: list[str] = []
    limit, offset = DEFAULT_LIMIT, 0
    try:
        for raw_name, value in params:
            name = raw_name if raw_name in _CONTROL else _keyword(raw_name)
            if name == "includefield":
                includes.append(value)
            elif name == "limit":
                limit = parse_integer("limit", value, minimum=1, maximum=MAX_LIMIT)
            elif name == "offset":
                offset = parse_integer("offset", value, minimum=0, maximum=MAX_DB_INT)
            elif name not in _CONTROL:
                values[name] = value
        matching = parse_matching(level, values)
    except InvalidMatch as exc:
        raise InvalidInput(str(exc)) from exc
    include_all, include_tags = _include_tags(includes)
    return QidoQuery(
        matching=matching,
        limit=limit,
        offset=offset,
        include_all=include_all,
        include_tags=include_tags,
    )
