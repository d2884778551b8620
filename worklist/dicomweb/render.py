"""Rendering one frame of a stored image as JPEG or PNG: decoded, rescaled, windowed, scaled.

Everything here is blocking CPU and file work: call it from a worker thread. Only the
requested frame is decoded (pydicom reads just that frame's bytes from the file), so a
large multi-frame image costs one frame of memory, not the whole Pixel Data.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import pixel_array

from worklist.dicomweb import files
from worklist.dicomweb.media import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    ENCAPSULATED_FRAME_TYPES,
    JPEG,
    NATIVE_LITTLE_ENDIAN,
    PNG,
    NotAcceptable,
)
from worklist.errors import DomainError, NotFound

log = logging.getLogger(__name__)

MAX_GREY = 255
DEFAULT_JPEG_QUALITY = 90
# A frame larger than this (rows x columns) is refused rather than decoded: rendering
# holds a few float copies of it, and a request must not be able to take gigabytes.
MAX_RENDERED_PIXELS = 32 * 1024 * 1024
MONOCHROME1 = "MONOCHROME1"
PALETTE_COLOR = "PALETTE COLOR"
INVERSE = "INVERSE"
DEFER_BYTES = 1024


class WindowFunction(StrEnum):
    """The VOI LUT functions of PS3.3 C.11.2.1.2 (query values and VOILUTFunction)."""

    LINEAR = "linear"
    LINEAR_EXACT = "linear-exact"
    SIGMOID = "sigmoid"


@dataclass(frozen=True)
class Window:
    """A VOI window on modality (rescaled) values: centre, width and function."""

    center: float
    width: float
    function: WindowFunction = WindowFunction.LINEAR


@dataclass(frozen=True)
class Viewport:
    """The box the rendered image is scaled to fit, aspect ratio kept."""

    width: int
    height: int


@dataclass(frozen=True)
class RenderOptions:
    """How to render: which frame (1-based), media type, window, viewport and JPEG quality."""

    media_type: str
    frame: int = 1
    window: Window | None = None
    viewport: Viewport | None = None
    # True: scale down only (a thumbnail's default box); False: scale up or down to fit.
    shrink_only: bool = False
    quality: int = DEFAULT_JPEG_QUALITY


def _float_value(value: Any) -> float | None:
    """The first value of a (possibly multi-valued) numeric attribute; None if unusable."""
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list | tuple):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def default_window(ds: Dataset, values: NDArray[np.float32]) -> Window:
    """The instance's own window (first WindowCenter/Width), else the frame's value range."""
    center = _float_value(ds.get("WindowCenter"))
    width = _float_value(ds.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        name = str(ds.get("VOILUTFunction", "") or "").strip().lower().replace("_", "-")
        function = WindowFunction(name) if name in set(WindowFunction) else WindowFunction.LINEAR
        return Window(center, width, function)
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2, max(high - low, 0.0), WindowFunction.LINEAR_EXACT)


def _ramp(values: NDArray[np.float32], low: float, span: float) -> NDArray[np.float32]:
    """``(values - low) / span`` scaled to 0..255, computed in place on one copy."""
    scaled = values - np.float32(low)
    scaled *= np.float32(MAX_GREY / span)
    return scaled


def apply_window(values: NDArray[np.float32], window: Window) -> NDArray[np.uint8]:
    """Modality values to 8-bit grey levels, by the VOI LUT function of PS3.3 C.11.2.1.2."""
    c, w = window.center, window.width
    if window.function is WindowFunction.SIGMOID:
        with np.errstate(over="ignore"):  # exp overflows to inf far below c: grey 0
            scaled = MAX_GREY / (1 + np.exp(-4 * (values - c) / max(w, 1e-6)))
    elif window.function is WindowFunction.LINEAR_EXACT and w > 0:
        scaled = _ramp(values, c - w / 2, w)
    elif window.function is WindowFunction.LINEAR and w > 1:
        # y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clipped: a ramp from c - 0.5 - (w - 1) / 2.
        scaled = _ramp(values, c - 0.5 - (w - 1) / 2, w - 1)
    else:  # a linear width of 1, or a flat value range: a threshold
        threshold = c - 0.5 if window.function is WindowFunction.LINEAR else c
        scaled = np.where(values > threshold, np.float32(MAX_GREY), np.float32(0))
    np.clip(scaled, 0, MAX_GREY, out=scaled)
    np.rint(scaled, out=scaled)
    grey: NDArray[np.uint8] = scaled.astype(np.uint8)
    return grey


def _modality_values(ds: Dataset, raw: NDArray[Any]) -> NDArray[np.float32]:
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    slope = _float_value(ds.get("RescaleSlope"))
    intercept = _float_value(ds.get("RescaleIntercept"))
    values = raw.astype(np.float32)
    if slope is not None and slope != 1:
        values *= np.float32(slope)
    if intercept:
        values += np.float32(intercept)
    return values


def _to_8_bit(colour: NDArray[Any], bits: int) -> NDArray[np.uint8]:
    if colour.dtype == np.uint8 and bits <= 8:
        return colour
    scaled = colour.astype(np.float32) * np.float32(MAX_GREY / float(2**bits - 1))
    result: NDArray[np.uint8] = np.rint(np.clip(scaled, 0, MAX_GREY)).astype(np.uint8)
    return result


def to_display(ds: Dataset, raw: NDArray[Any], window: Window | None) -> NDArray[np.uint8]:
    """A decoded frame as 8-bit grey (rows x columns) or RGB (rows x columns x 3)."""
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric == PALETTE_COLOR:
        rgb = apply_color_lut(raw, ds)
        return _to_8_bit(rgb, 16 if rgb.dtype == np.uint16 else 8)
    if raw.ndim == 3:  # RGB (YBR already converted by pydicom)
        return _to_8_bit(raw, int(ds.get("BitsStored", 8) or 8))
    values = _modality_values(ds, raw)
    grey = apply_window(values, window or default_window(ds, values))
    inverse = str(ds.get("PresentationLUTShape", "") or "").strip().upper() == INVERSE
    if (photometric == MONOCHROME1) != inverse:
        grey = MAX_GREY - grey
    return grey


def _fit(size: tuple[int, int], box: Viewport, *, shrink_only: bool) -> tuple[int, int]:
    width, height = size
    scale = min(box.width / width, box.height / height)
    if shrink_only:
        scale = min(scale, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode(pixels: NDArray[np.uint8], options: RenderOptions) -> bytes:
    """8-bit grey or RGB pixels as a JPEG or PNG, scaled to the viewport if one is given."""
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    if options.viewport is not None:
        size = _fit(image.size, options.viewport, shrink_only=options.shrink_only)
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if options.media_type == PNG:
        image.save(buffer, format="PNG")
    else:
        assert options.media_type == JPEG
        image.save(buffer, format="JPEG", quality=options.quality)
    return buffer.getvalue()


def _check_renderable(ds: Dataset) -> None:
    syntax = str(ds.file_meta.TransferSyntaxUID)
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise NotAcceptable(f"images in transfer syntax {syntax} cannot be rendered here")
    rows = int(ds.get("Rows", 0) or 0)
    columns = int(ds.get("Columns", 0) or 0)
    if rows * columns > MAX_RENDERED_PIXELS:
        raise NotAcceptable(f"a {columns}x{rows} frame is too large to render")
    if int(ds.get("SamplesPerPixel", 1) or 1) not in (1, 3):
        raise NotAcceptable("only images of one or three samples per pixel are rendered")


def _frame_total(path: Path, ds: Dataset) -> int:
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if syntax in NATIVE_LITTLE_ENDIAN or syntax in ENCAPSULATED_FRAME_TYPES:
        return files.frame_count(path)  # finds Pixel Data without reading it
    # Big endian or deflated: parse the whole file, deferring (not reading) large values.
    if "PixelData" not in dcmread(path, defer_size=DEFER_BYTES):
        return 0
    return int(ds.get("NumberOfFrames", 1) or 1)


def frame_of(path: Path, frame: int) -> tuple[Dataset, NDArray[Any]]:
    """The header and the decoded frame (1-based) of a stored image; NotFound if absent."""
    with path.open("rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        count = _frame_total(path, ds)
        if count == 0:
            raise NotFound("the instance has no pixel data")
        if not 1 <= frame <= count:
            raise NotFound(f"{files.FRAME_NOT_FOUND}: the instance has {count} frame(s)")
        _check_renderable(ds)
        fp.seek(0)
        if str(ds.file_meta.TransferSyntaxUID) == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            # pydicom inflates a deflated file only when it reads the whole dataset.
            return ds, pixel_array(dcmread(fp), index=frame - 1)
        raw = pixel_array(fp, index=frame - 1)
    return ds, raw


def render(path: Path, options: RenderOptions) -> bytes:
    """One frame of a stored image rendered as ``options`` ask."""
    try:
        ds, raw = frame_of(path, options.frame)
        pixels = to_display(ds, raw, options.window)
    except DomainError:
        raise
    except Exception as exc:
        # A decoder refusing the stored bytes, or a header it cannot use: a property of
        # the stored image, answered as such rather than as a server error.
        reason = type(exc).__name__
        log.warning("an image could not be rendered: %s", reason)
        raise NotAcceptable(f"the image could not be rendered ({reason})") from exc
    return encode(pixels, options)
