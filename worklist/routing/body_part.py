"""Body Part Examined for routing, read from one stored file of a study.

The gateway's index function (``index_instances``, the C-STORE fast path) does not carry
the attribute; the worker reads it once, from the study's first stored instance, when it
makes the study ready. A file that cannot be read leaves ``body_part`` null (rules on
body part then do not match it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy import Integer, Table, Text, column, select, update, values
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import Instance, Study

log = logging.getLogger(__name__)

BODY_PART_EXAMINED = "BodyPartExamined"
_STUDIES = cast(Table, Study.__table__)


def read_body_part(path: Path) -> str | None:
    """The file's Body Part Examined in capitals, or None (absent, blank or unreadable)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=[BODY_PART_EXAMINED])
    except (OSError, InvalidDicomError, ValueError, EOFError):
        return None
    value = ds.get(BODY_PART_EXAMINED)
    text = str(value).strip().upper() if value is not None else ""
    return text or None


def _read_all(paths: Sequence[tuple[int, Path]]) -> list[tuple[int, str]]:
    found = []
    for study_id, path in paths:
        body_part = read_body_part(path)
        if body_part is None:
            log.info("no body part examined read", extra={"study_id": study_id})
        else:
            found.append((study_id, body_part))
    return found


async def fill_body_parts(
    session: AsyncSession, study_ids: Sequence[int], *, dicom_dir: Path
) -> int:
    """Set ``body_part`` of these studies that have none from a stored file; how many."""
    if not study_ids:
        return 0
    first_files = (
        select(Instance.study_id, Instance.path)
        .join(Study, Study.id == Instance.study_id)
        .where(Instance.study_id.in_(study_ids), Study.body_part.is_(None))
        .ext(distinct_on(Instance.study_id))
        .order_by(Instance.study_id, Instance.id)
    )
    paths = [(row.study_id, dicom_dir / row.path) for row in await session.execute(first_files)]
    # Blocking file reads: off the event loop.
    found = await asyncio.to_thread(_read_all, paths)
    if not found:
        return 0
    read = values(column("id", Integer), column("body_part", Text), name="read").data(found)
    await session.execute(
        update(_STUDIES)
        .where(_STUDIES.c.id == read.c.id, _STUDIES.c.body_part.is_(None))
        .values(body_part=read.c.body_part)
    )
    return len(found)
