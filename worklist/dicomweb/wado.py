"""WADO-RS routes: instances, metadata, frames and bulk data of the studies a caller may see.

Bodies stream stored files from worker threads (StreamingResponse runs a plain iterator
in the thread pool) in bounded chunks, so a 2 GB study neither blocks the event loop nor
grows the process. Each retrieval's audit row commits with the request's transaction,
before the first byte is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep
from worklist.api.guard import UidPath
from worklist.dicomweb import files, media, service
from worklist.dicomweb.dicomjson import instance_url
from worklist.dicomweb.multipart import Part, content_type, new_boundary, stream_parts
from worklist.dicomweb.repository import StoredInstance
from worklist.dicomweb.responses import DicomJsonStream, MultipartRelated, datasets, multipart
from worklist.dicomweb.service import Caller, Scope
from worklist.errors import InvalidInput, NotFound

router = APIRouter()

NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such study, series or instance, or not visible"}
}
NOT_ACCEPTABLE: dict[int | str, dict[str, Any]] = {
    406: {"description": "The stored transfer syntax is not among those accepted"}
}
RETRIEVE_RESPONSES: dict[int | str, dict[str, Any]] = {**NOT_VISIBLE, **NOT_ACCEPTABLE}
INSTANCES = {
    **RETRIEVE_RESPONSES,
    **multipart('Part 10 instances as stored: multipart/related; type="application/dicom"'),
}
METADATA = {**NOT_VISIBLE, **datasets("The DICOM JSON header of each instance (bulk data by URI)")}
FRAMES = {
    **RETRIEVE_RESPONSES,
    **multipart("Frames (raw pixels or as encapsulated) or a bulk value, one part each"),
}
FRAME_LIST_PATTERN = "^[0-9]+(,[0-9]+)*$"
TAG_PATTERN = "^[0-9A-Fa-f]{8}$"
FrameListPath = Annotated[
    str, PathParam(pattern=FRAME_LIST_PATTERN, description="1-based frame numbers: 1 or 1,3,5")
]
TagPath = Annotated[str, PathParam(pattern=TAG_PATTERN, description="An 8-digit hexadecimal tag")]
MAX_FRAMES_PER_REQUEST = 1000
MAX_UID_LENGTH = 64
# Negotiation reads Accept; OpenAPI declares it through each response's media types.
Accept = Header(default=None, alias="accept", include_in_schema=False)


async def dicomweb_caller(
    request: Request,
    user: CurrentUser,
    address: ClientAddress,
    via: Annotated[
        str | None,
        Query(
            max_length=MAX_UID_LENGTH,
            description="A study the caller may see: reach its priors (and only those) "
            "instead of the caller's own studies",
        ),
    ] = None,
) -> Caller:
    """The caller of a DICOMweb request, with the base URL links are built on."""
    return Caller(user=user, address=address, base_url=str(request.base_url).rstrip("/"), via=via)


CallerDep = Annotated[Caller, Depends(dicomweb_caller)]


# --- instances ------------------------------------------------------------------------


async def _instances(
    session: SessionDep,
    caller: Caller,
    accept: str | None,
    dicom_dir: Path,
    scope: Scope,
) -> StreamingResponse:
    retrieval = await service.prepare_retrieval(
        session=session, caller=caller, scope=scope, what="instances"
    )
    syntaxes = retrieval.transfer_syntaxes
    if not media.accepts_stored_instances(accept, syntaxes):
        raise media.NotAcceptable(
            'instances are served as stored (multipart/related; type="application/dicom") '
            f"in transfer syntax {', '.join(sorted(syntaxes))}; we do not transcode"
        )
    boundary = new_boundary()
    parts = (
        Part(
            content_type=f"{media.DICOM}; transfer-syntax={i.transfer_syntax_uid}",
            chunks=partial(files.iter_file, dicom_dir / i.path),
        )
        for i in retrieval.instances
    )
    only_syntax = next(iter(syntaxes)) if len(syntaxes) == 1 else None
    return StreamingResponse(
        stream_parts(parts, boundary),
        media_type=content_type(media.DICOM, boundary, only_syntax),
    )


@router.get(
    "/studies/{study:uid}",
    response_class=MultipartRelated,
    responses=INSTANCES,
)
async def retrieve_study(
    study: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: every instance of a study, as stored, in one multipart/related body."""
    scope = Scope(study_uid=study)
    return await _instances(session, caller, accept, settings.dicom_dir, scope)


@router.get(
    "/studies/{study:uid}/series/{series:uid}",
    response_class=MultipartRelated,
    responses=INSTANCES,
)
async def retrieve_series(
    study: UidPath,
    series: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: every instance of a series, as stored."""
    scope = Scope(study_uid=study, series_uid=series)
    return await _instances(session, caller, accept, settings.dicom_dir, scope)


@router.get(
    "/studies/{study:uid}/series/{series:uid}/instances/{sop:uid}",
    response_class=MultipartRelated,
    responses=INSTANCES,
)
async def retrieve_instance(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: one instance, as stored."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await _instances(session, caller, accept, settings.dicom_dir, scope)


# --- metadata -------------------------------------------------------------------------


def _bulk_data_url(instance: str, link_query: str, tag: str) -> str:
    return f"{instance}/bulkdata/{tag}{link_query}"


def _metadata_body(
    dicom_dir: Path,
    caller: Caller,
    study_uid: str,
    instances: list[StoredInstance],
) -> Iterator[bytes]:
    yield b"["
    for index, stored in enumerate(instances):
        url = instance_url(caller.base_url, study_uid, stored.series_uid, stored.sop_instance_uid)
        bulk_data_url = partial(_bulk_data_url, url, caller.link_query)
        header = files.instance_metadata(dicom_dir / stored.path, bulk_data_url=bulk_data_url)
        yield (b"," if index else b"") + json.dumps(header, separators=(",", ":")).encode()
    yield b"]"


async def _metadata(
    session: SessionDep,
    caller: Caller,
    accept: str | None,
    dicom_dir: Path,
    scope: Scope,
) -> StreamingResponse:
    media.require_json(accept)
    retrieval = await service.prepare_retrieval(
        session=session, caller=caller, scope=scope, what="metadata"
    )
    body = _metadata_body(dicom_dir, caller, retrieval.study.study_uid, retrieval.instances)
    return StreamingResponse(body, media_type=media.DICOM_JSON)


@router.get(
    "/studies/{study:uid}/metadata",
    response_class=DicomJsonStream,
    responses=METADATA,
)
async def retrieve_study_metadata(
    study: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: the DICOM JSON header of every instance of a study (bulk data by URI)."""
    scope = Scope(study_uid=study)
    return await _metadata(session, caller, accept, settings.dicom_dir, scope)


@router.get(
    "/studies/{study:uid}/series/{series:uid}/metadata",
    response_class=DicomJsonStream,
    responses=METADATA,
)
async def retrieve_series_metadata(
    study: UidPath,
    series: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: the DICOM JSON header of every instance of a series."""
    scope = Scope(study_uid=study, series_uid=series)
    return await _metadata(session, caller, accept, settings.dicom_dir, scope)


@router.get(
    "/studies/{study:uid}/series/{series:uid}/instances/{sop:uid}/metadata",
    response_class=DicomJsonStream,
    responses=METADATA,
)
async def retrieve_instance_metadata(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: the DICOM JSON header of one instance."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await _metadata(session, caller, accept, settings.dicom_dir, scope)


# --- frames and bulk data -------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """``1,3,5`` as frame numbers; InvalidInput unless every item is a positive integer."""
    items = [item.strip() for item in text.split(",")]
    if (
        not items
        or len(items) > MAX_FRAMES_PER_REQUEST
        or not all(i.isascii() and i.isdigit() for i in items)
    ):
        raise InvalidInput(
            f"frames: expected a comma-separated list of at most {MAX_FRAMES_PER_REQUEST} "
            "frame numbers (1-based)"
        )
    numbers = [int(item) for item in items]
    if min(numbers) < 1:
        raise InvalidInput("frames: frame numbers start at 1")
    return numbers


def _multipart(parts: Iterable[tuple[str, bytes]], chosen: media.FrameMedia) -> StreamingResponse:
    boundary = new_boundary()
    body = stream_parts((Part(kind, partial(iter, [data])) for kind, data in parts), boundary)
    return StreamingResponse(
        body, media_type=content_type(chosen.media_type, boundary, chosen.transfer_syntax)
    )


@router.get(
    "/studies/{study:uid}/series/{series:uid}/instances/{sop:uid}/frames/{frame_list}",
    response_class=MultipartRelated,
    responses=FRAMES,
)
async def retrieve_frames(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    frame_list: FrameListPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: frames of an image (raw pixels when uncompressed, else as encapsulated)."""
    numbers = parse_frame_list(frame_list)
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    retrieval = await service.prepare_retrieval(
        session=session, caller=caller, scope=scope, what="frames"
    )
    stored = retrieval.instances[0]
    chosen = media.negotiate_frames(accept, stored.transfer_syntax_uid)
    # The file is opened and the first frame read before the response starts, so a bad
    # frame number is a 404 (rolling the audit row back) rather than a broken body.
    path = settings.dicom_dir / stored.path
    frames = await anyio.to_thread.run_sync(files.read_frames, path, numbers)
    return _multipart(((chosen.content_type(), frame) for frame in frames), chosen)


@router.get(
    "/studies/{study:uid}/series/{series:uid}/instances/{sop:uid}/bulkdata/{tag}",
    response_class=MultipartRelated,
    responses=FRAMES,
)
async def retrieve_bulk_data(
    study: UidPath,
    series: UidPath,
    sop: UidPath,
    tag: TagPath,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    accept: str | None = Accept,
) -> StreamingResponse:
    """WADO-RS: a BulkDataURI of the metadata (Pixel Data as its frames; other top-level values)."""
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag):
        raise InvalidInput("bulkdata: expected an 8-digit hexadecimal tag")
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    retrieval = await service.prepare_retrieval(
        session=session, caller=caller, scope=scope, what="bulkdata"
    )
    path = settings.dicom_dir / retrieval.instances[0].path
    if int(tag, 16) == files.PIXEL_DATA_TAG:
        count = await anyio.to_thread.run_sync(files.frame_count, path)
        if count == 0:
            raise NotFound("the instance has no pixel data")
        chosen = media.negotiate_frames(accept, retrieval.instances[0].transfer_syntax_uid)
        frames = await anyio.to_thread.run_sync(files.read_frames, path, list(range(1, count + 1)))
        return _multipart(((chosen.content_type(), frame) for frame in frames), chosen)
    value = await anyio.to_thread.run_sync(files.bulk_value, path, int(tag, 16))
    octets = media.FrameMedia(media.OCTET_STREAM, media.EXPLICIT_VR_LITTLE_ENDIAN)
    return _multipart([(media.OCTET_STREAM, value)], octets)
