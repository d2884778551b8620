"""Rendering stored files: pydicom's sample files of every kind, and the window functions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom.data import get_testdata_file

from worklist.dicomweb import render
from worklist.dicomweb.media import PNG, NotAcceptable
from worklist.dicomweb.render import RenderOptions, Window, WindowFunction
from worklist.errors import NotFound

# The 100x100 colour bars, stored RGB, YBR, JPEG (lossy) and RLE 16-bit.
COLOUR_BARS = "SC_rgb_rle.dcm"


def _sample(name: str) -> Path:
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    return Path(path)


def _pixels(name: str, frame: int = 1) -> NDArray[np.int64]:
    image = Image.open(io.BytesIO(render.render(_sample(name), RenderOptions(PNG, frame=frame))))
    return np.asarray(image).astype(np.int64)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("CT_small.dcm", (128, 128)),
        ("JPEG2000.dcm", (1024, 256)),
        ("JPGExtended.dcm", (1024, 256)),
        ("JPEGLSNearLossless_16.dcm", (50, 10)),
        ("693_J2KI.dcm", (512, 512)),
        ("image_dfl.dcm", (512, 512)),  # deflated
        ("rtdose_rle_1frame.dcm", (10, 10)),
        ("examples_palette.dcm", (350, 800, 3)),
        ("examples_jpeg2k.dcm", (480, 640, 3)),
    ],
)
def test_samples_of_each_transfer_syntax_and_photometric_render(
    name: str, shape: tuple[int, ...]
) -> None:
    pixels = _pixels(name)
    assert pixels.shape == shape
    assert pixels.max() > pixels.min()  # a picture, not a blank


def test_colour_is_the_same_picture_whether_stored_rgb_ybr_jpeg_or_16_bit() -> None:
    bars = _pixels(COLOUR_BARS)
    assert bars[0, 0].tolist() == [255, 0, 0]
    assert bars[99, 99].tolist() == [255, 255, 255]
    assert np.array_equal(_pixels("SC_rgb_rle_16bit.dcm"), bars)
    for other in ("SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm"):
        assert np.abs(_pixels(other) - bars).max() <= 8, other  # YBR rounding, JPEG loss


def test_big_endian_and_rle_give_the_same_picture_as_little_endian() -> None:
    plain = _pixels("MR_small.dcm")
    for other in ("MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_RLE.dcm"):
        assert np.array_equal(_pixels(other), plain), other


def test_frames_of_a_multi_frame_sample_differ() -> None:
    assert not np.array_equal(_pixels("rtdose.dcm", 1), _pixels("rtdose.dcm", 15))
    with pytest.raises(NotFound):
        _pixels("rtdose.dcm", 16)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("test-SR.dcm", NotFound),  # no pixel data
        ("MR_truncated.dcm", NotAcceptable),  # pixel data shorter than its attributes
        ("JPEG-lossy.dcm", NotAcceptable),  # a JPEG the decoders refuse
    ],
)
def test_what_cannot_be_rendered_is_a_client_error(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        render.render(_sample(name), RenderOptions(PNG))


def test_linear_windows_follow_ps3_3_including_their_edges() -> None:
    values = np.array([-1000, 99, 99.5, 100, 100.5, 1000], dtype=np.float32)
    # Width 1: a threshold at c - 0.5.
    assert render.apply_window(values, Window(100, 1)).tolist() == [0, 0, 0, 255, 255, 255]
    exact = Window(100, 2, WindowFunction.LINEAR_EXACT)
    assert render.apply_window(values, exact).tolist() == [0, 0, 64, 128, 191, 255]
    sigmoid = render.apply_window(values, Window(100, 2, WindowFunction.SIGMOID)).tolist()
    assert (sigmoid[0], sigmoid[3], sigmoid[-1]) == (0, 128, 255)
    assert sigmoid == sorted(sigmoid)
