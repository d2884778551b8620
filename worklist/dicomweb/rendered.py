"""WADO-RS rendered and thumbnail resources: one frame of a visible image as JPEG or PNG.

Same tokens, visibility and audit as the rest of WADO-RS (``service.prepare_retrieval``,
``what`` = ``rendered`` or ``thumbnail``). Decoding and encoding run in worker threads,
a few at a time per app, and finish before the response starts: a frame that cannot be
rendered is a clean 4xx and rolls the audit row back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.api.deps import SessionDep, SettingsDep
from worklist.api.guard import UidPath
from worklist.dicomweb import media, render, service
from worklist.dicomweb.render import RenderOptions, Viewport, Window, WindowFunction
from worklist.dicomweb.repository import StoredInstance
from worklist.dicomweb.service import Caller, Scope
from worklist.dicomweb.wado import NOT_VISIBLE, Accept, CallerDep, parse_frame_list
from worklist.errors import DomainError, InvalidInput, NotFound

router = APIRouter()

# Decoding holds a frame (and a few float copies) in memory: bound how many at once.
RENDER_CONCURRENCY = 2
THUMBNAIL_SIZE = 128  # a thumbnail's longest side when no viewport is asked for
MAX_VIEWPORT = 4096
# A study or series thumbnail tries at most this many series for a renderable image.
MAX_THUMBNAIL_CANDIDATES = 8
CACHE_CONTROL = "private, max-age=300"

RENDERED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The rendered image",
        "content": {media.JPEG: {}, media.PNG: {}},
    },
    **NOT_VISIBLE,
    406: {"description": "Neither JPEG nor PNG is accepted, or the image cannot be rendered"},
    422: {"description": "A query parameter (window, viewport, quality, frame) is invalid"},
}


@dataclass(frozen=True)
class RenderQuery:
    """The query parameters of a rendered or thumbnail request, parsed."""

    accept: str | None
    window: Window | None
    viewport: Viewport | None
    quality: int


def _numbers(name: str, text: str, count: int) -> list[float]:
    items = [item.strip() for item in text.split(",")]
    try:
        values = [float(item) for item in items]
    except ValueError:
        values = []
    if len(values) != count or not all(v == v and abs(v) != float("inf") for v in values):
        raise InvalidInput(f"{name}: expected {count} comma-separated numbers")
    return values


def parse_window(text: str) -> Window:
    """``center,width[,function]`` (function linear, linear-exact or sigmoid)."""
    center_text, _, rest = text.partition(",")
    width_text, _, function_text = rest.partition(",")
    center, width = _numbers("window", f"{center_text},{width_text}", 2)
    name = function_text.strip().lower() or WindowFunction.LINEAR.value
    if name not in set(WindowFunction):
        raise InvalidInput(f"window: function must be one of {', '.join(WindowFunction)}")
    function = WindowFunction(name)
    minimum = 1.0 if function is WindowFunction.LINEAR else 0.0
    if width < minimum or (function is not WindowFunction.LINEAR and width == 0):
        raise InvalidInput("window: the width must be positive (at least 1 for linear)")
    return Window(center, width, function)


def parse_viewport(text: str) -> Viewport:
    """``width,height`` in pixels, each 1 to MAX_VIEWPORT."""
    width, height = _numbers("viewport", text, 2)
    if not (width.is_integer() and height.is_integer()) or not (
        1 <= width <= MAX_VIEWPORT and 1 <= height <= MAX_VIEWPORT
    ):
        raise InvalidInput(f"viewport: expected width,height in pixels, 1 to {MAX_VIEWPORT}")
    return Viewport(int(width), int(height))


async def render_query(
    window: str | None = Query(
        None, description="center,width[,function]: linear (default), linear-exact, sigmoid"
    ),
    viewport: str | None = Query(None, description="width,height: the box the image fits"),
    quality: int | None = Query(None, ge=1, le=100, description="JPEG quality, 1 to 100"),
    accept: str | None = Query(None, description="Media types, used instead of Accept"),
) -> RenderQuery:
    """The rendered resources' query parameters (PS3.18 8.3.5.1), validated."""
    return RenderQuery(
        accept=accept,
        window=parse_window(window) if window is not None else None,
        viewport=parse_viewport(viewport) if viewport is not None else None,
        quality=quality if quality is not None else render.DEFAULT_JPEG_QUALITY,
    )


RenderQueryDep = Annotated[RenderQuery, Depends(render_query)]


def _limiter(request: Request) -> anyio.CapacityLimiter:
    # Made on first use, inside the app's event loop; one per app.
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "render_limiter", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(RENDER_CONCURRENCY)
        state.render_limiter = limiter
    return limiter


LimiterDep = Annotated[anyio.CapacityLimiter, Depends(_limiter)]


def _single_frame(frame_list: str) -> int:
    numbers = parse_frame_list(frame_list)
    if len(numbers) > 1:
        raise media.NotAcceptable(
            "several frames render only as a multi-frame media type; ask for one frame at a time"
        )
    return numbers[0]


def representatives(instances: Sequence[StoredInstance]) -> list[StoredInstance]:
    """The middle instance of each series, series in reading order (a thumbnail's candidates)."""
    by_series: dict[str, list[StoredInstance]] = {}
    for instance in instances:
        by_series.setdefault(instance.series_uid, []).append(instance)
    return [members[len(members) // 2] for members in by_series.values()]


def render_first(paths: Sequence[Path], options: RenderOptions) -> bytes:
    """The first of ``paths`` that renders; the last refusal when none does."""
    failure: DomainError = NotFound("no instance with renderable pixel data")
    for path in paths:
        try:
            return render.render(path, options)
        except (NotFound, media.NotAcceptable) as exc:
            failure = exc
    raise failure


@dataclass(frozen=True)
class RenderRequest:
    """What every rendered or thumbnail route needs: the caller, the files, the options."""

    session: AsyncSession
    caller: Caller
    dicom_dir: Path
    limiter: anyio.CapacityLimiter
    query: RenderQuery
    accept: str | None

    async def respond(
        self, scope: Scope, *, thumbnail: bool, frame_list: str | None = None
    ) -> Response:
        """Render ``scope`` (one instance, else a representative of each series)."""
        frame = _single_frame(frame_list) if frame_list is not None else 1
        options = _options(self.query, self.accept, frame=frame)
        if thumbnail:
            options = _thumbnail(options)
        retrieval = await service.prepare_retrieval(
            session=self.session,
            caller=self.caller,
            scope=scope,
            what="thumbnail" if thumbnail else "rendered",
        )
        if scope.sop_instance_uid is not None:
            paths = [self.dicom_dir / retrieval.instances[0].path]
        else:
            candidates = representatives(retrieval.instances)[:MAX_THUMBNAIL_CANDIDATES]
            paths = [self.dicom_dir / i.path for i in candidates]
        body = await anyio.to_thread.run_sync(
            partial(render_first, paths, options), limiter=self.limiter
        )
        headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept"}
        return Response(body, media_type=options.media_type, headers=headers)


async def render_request(
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    query: RenderQueryDep,
    limiter: LimiterDep,
    accept: str | None = Accept,
) -> RenderRequest:
    """The rendering context of a request."""
    return RenderRequest(session, caller, settings.dicom_dir, limiter, query, accept)


RenderDep = Annotated[RenderRequest, Depends(render_request)]


def _options(query: RenderQuery, accept: str | None, *, frame: int = 1) -> RenderOptions:
    return RenderOptions(
        media_type=media.negotiate_rendered(accept, query.accept),
        frame=frame,
        window=query.window,
        viewport=query.viewport,
        quality=query.quality,
    )


def _thumbnail(options: RenderOptions) -> RenderOptions:
    if options.viewport is not None:
        return options
    box = Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    return replace(options, viewport=box, shrink_only=True)


INSTANCE = "/studies/{study:uid}/series/{series:uid}/instances/{sop:uid}"


@router.get(f"{INSTANCE}/rendered", response_class=Response, responses=RENDERED_RESPONSES)
async def retrieve_rendered_instance(
    study: UidPath, series: UidPath, sop: UidPath, request: RenderDep
) -> Response:
    """WADO-RS rendered: an instance (its first frame) as JPEG or PNG, windowed."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await request.respond(scope, thumbnail=False)


@router.get(
    f"{INSTANCE}/frames/{{frame_list}}/rendered",
    response_class=Response,
    responses=RENDERED_RESPONSES,
)
async def retrieve_rendered_frame(
    study: UidPath, series: UidPath, sop: UidPath, frame_list: str, request: RenderDep
) -> Response:
    """WADO-RS rendered: one frame (1-based) of an instance as JPEG or PNG, windowed."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await request.respond(scope, thumbnail=False, frame_list=frame_list)


@router.get("/studies/{study:uid}/thumbnail", response_class=Response, responses=RENDERED_RESPONSES)
async def retrieve_study_thumbnail(study: UidPath, request: RenderDep) -> Response:
    """WADO-RS thumbnail of a study: the middle image of its first renderable series."""
    return await request.respond(Scope(study_uid=study), thumbnail=True)


@router.get(
    "/studies/{study:uid}/series/{series:uid}/thumbnail",
    response_class=Response,
    responses=RENDERED_RESPONSES,
)
async def retrieve_series_thumbnail(
    study: UidPath, series: UidPath, request: RenderDep
) -> Response:
    """WADO-RS thumbnail of a series: its middle image."""
    return await request.respond(Scope(study_uid=study, series_uid=series), thumbnail=True)


@router.get(f"{INSTANCE}/thumbnail", response_class=Response, responses=RENDERED_RESPONSES)
async def retrieve_instance_thumbnail(
    study: UidPath, series: UidPath, sop: UidPath, request: RenderDep
) -> Response:
    """WADO-RS thumbnail of an instance (its first frame)."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await request.respond(scope, thumbnail=True)


@router.get(
    f"{INSTANCE}/frames/{{frame_list}}/thumbnail",
    response_class=Response,
    responses=RENDERED_RESPONSES,
)
async def retrieve_frame_thumbnail(
    study: UidPath, series: UidPath, sop: UidPath, frame_list: str, request: RenderDep
) -> Response:
    """WADO-RS thumbnail of one frame of an instance."""
    scope = Scope(study_uid=study, series_uid=series, sop_instance_uid=sop)
    return await request.respond(scope, thumbnail=True, frame_list=frame_list)
