"""JSON bodies of the hot routes, written without validating them again.

The worklist page and ``worklist/next`` build their items from database rows through the
one item builder (``WorklistItem.fields_from_columns``); validating those rows into
pydantic models only to serialise them cost about a third of a page's API CPU. They are
serialised as they are here, in the format the response models write (aware datetimes in
UTC end in ``Z``, dates as ISO dates, enums as their values). Tests check the bodies
against the models: a body must come back unchanged from ``model_validate`` and
``model_dump(mode="json")``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

_OPTIONS = orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    """``value`` (dicts, lists, str, numbers, dates, aware datetimes, str enums) as JSON."""
    return orjson.dumps(value, option=_OPTIONS)


def response(value: Any) -> Response:
    """An ``application/json`` response of ``value``."""
    return Response(dumps(value), media_type="application/json")
