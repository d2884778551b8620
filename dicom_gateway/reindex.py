"""Rebuild or repair the index from the stored files (``worklist reindex``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dicom_gateway.indexer import IndexRequest, SiteRef, index_batch
from dicom_gateway.parse import InstanceRejected, read_header
from dicom_gateway.storage import Storage, canonical_name
from worklist.config import Settings
from worklist.db import make_engine, make_sessionmaker
from worklist.models import Instance, Site

log = logging.getLogger("dicom_gateway.reindex")

BATCH_SIZE = 200
REINDEX_ACTOR = "reindex"

_RECOUNT = text(
    """
    UPDATE series SET instance_count = c.n
    FROM (SELECT se.id, count(i.id) AS n FROM series se
          LEFT JOIN instances i ON i.series_id = se.id GROUP BY se.id) AS c
    WHERE series.id = c.id AND series.instance_count <> c.n;
    UPDATE studies SET instance_count = c.n, series_count = c.s
    FROM (SELECT st.id,
                 (SELECT count(*) FROM instances i WHERE i.study_id = st.id) AS n,
                 (SELECT count(*) FROM series se WHERE se.study_id = st.id) AS s
          FROM studies st) AS c
    WHERE studies.id = c.id AND (studies.instance_count <> c.n OR studies.series_count <> c.s);
    """
)


@dataclass
class ReindexResult:
    """What a reindex found and did."""

    files: int = 0
    indexed: int = 0
    repaired: int = 0
    removed: int = 0
    errors: int = 0
    superseded: int = 0


def reindex(
    settings: Settings, *, progress: Callable[[int, int], None] | None = None
) -> ReindexResult:
    """Index every stored file that is missing or stale in the index; drop rows without files."""
    engine = make_engine(settings.require_database_url(), application_name="worklist-reindex")
    sessions = make_sessionmaker(engine)
    storage = Storage(settings.dicom_dir)
    result = ReindexResult()
    try:
        files = storage.iter_files()
        result.files = len(files)
        with sessions() as session:
            files = _one_version_each(session, storage, files, result)
            sites = {
                code: SiteRef(id=sid, code=code, default_priority=prio)
                for sid, code, prio in session.execute(
                    select(Site.id, Site.code, Site.default_priority)
                )
            }
        for start in range(0, len(files), BATCH_SIZE):
            chunk = files[start : start + BATCH_SIZE]
            requests = [r for r in (_request(storage, p, sites, result) for p in chunk) if r]
            if requests:
                with sessions() as session, session.begin():
                    changed = index_batch(session, requests, turnaround=settings.turnaround_targets)
                result.repaired += changed
                result.indexed += len(requests)
            if progress:
                progress(min(start + BATCH_SIZE, len(files)), len(files))
        with sessions() as session, session.begin():
            result.removed = _remove_rows_without_files(session, storage)
            session.execute(_RECOUNT)
    finally:
        engine.dispose()
    log.info(
        "reindex finished",
        extra={
            "files": result.files,
            "repaired": result.repaired,
            "removed": result.removed,
            "errors": result.errors,
        },
    )
    return result


def _request(
    storage: Storage, relative: Path, sites: dict[str, SiteRef], result: ReindexResult
) -> IndexRequest | None:
    site = sites.get(relative.parts[0]) if relative.parts else None
    if site is None:
        result.errors += 1
        log.warning("file of an unknown site", extra={"path": str(relative)})
        return None
    path = storage.absolute(relative)
    try:
        header = read_header(path, expected_sop_instance_uid=None)
        expected = storage.relative_path(
            site.code, header.study_uid, header.series_uid, header.sop_instance_uid
        )
    except (InstanceRejected, ValueError) as exc:
        result.errors += 1
        log.warning("unreadable stored file", extra={"path": str(relative), "reason": str(exc)})
        return None
    if expected.parent != relative.parent or canonical_name(relative.name) != expected.name:
        result.errors += 1
        log.warning("file not where its UIDs place it", extra={"path": str(relative)})
        return None
    return IndexRequest(
        header=header,
        site=site,
        path=str(relative),
        size_bytes=path.stat().st_size,
        actor=REINDEX_ACTOR,
        address=None,
    )


def _one_version_each(
    session: Session, storage: Storage, files: list[Path], result: ReindexResult
) -> list[Path]:
    """One file per instance: the version the index names, else the newest one.

    Several versions are left only by a crash between a replacement's commit and the
    removal of the version it superseded (or before a failed one was cleaned up).
    """
    groups: dict[Path, list[Path]] = {}
    for relative in files:
        groups.setdefault(relative.parent / canonical_name(relative.name), []).append(relative)
    if all(len(versions) == 1 for versions in groups.values()):
        return files
    indexed = {
        Path(path)
        for (path,) in session.execute(
            select(Instance.path).where(
                Instance.path.in_(
                    [str(v) for versions in groups.values() if len(versions) > 1 for v in versions]
                )
            )
        )
    }
    chosen = []
    for versions in groups.values():
        named = [v for v in versions if v in indexed]
        chosen.append(
            named[0] if named else max(versions, key=lambda v: storage.absolute(v).stat().st_mtime)
        )
        result.superseded += len(versions) - 1
    return sorted(chosen)


def _remove_rows_without_files(session: Session, storage: Storage) -> int:
    missing = [
        instance_id
        for instance_id, path in session.execute(select(Instance.id, Instance.path))
        if not storage.absolute(path).exists()
    ]
    for start in range(0, len(missing), 1000):
        session.execute(
            text("DELETE FROM instances WHERE id = ANY(:ids)"),
            {"ids": missing[start : start + 1000]},
        )
    return len(missing)
