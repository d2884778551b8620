"""Reading stored Part 10 files for WADO-RS: whole files in chunks, headers, and frames.

Everything here is blocking file I/O: call it from a worker thread, never the event loop.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame

from worklist.dicomweb.dicomjson import AVAILABLE_TRANSFER_SYNTAX_UID
from worklist.dicomweb.media import ENCAPSULATED_FRAME_TYPES, NATIVE_LITTLE_ENDIAN, NotAcceptable
from worklist.errors import NotFound

CHUNK_BYTES = 1024 * 1024
PIXEL_DATA_TAG = 0x7FE00010
# DICOM JSON: binary values longer than this become BulkDataURIs instead of inline base64.
BULK_DATA_THRESHOLD = 1024
SPECIFIC_CHARACTER_SET = "00080005"
PIXEL_DATA = "7FE00010"
UTF8_CHARSET = "ISO_IR 192"
UNDEFINED_LENGTH = 0xFFFFFFFF
# Explicit VRs whose element header has two reserved bytes and a 32-bit length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"})
_LONG_VRS |= {b"UR", b"UT", b"UV"}

FRAME_NOT_FOUND = "frame not found"


def iter_file(path: Path) -> Iterator[bytes]:
    """The file's bytes in chunks of at most CHUNK_BYTES (memory stays flat)."""
    with path.open("rb") as fp:
        while chunk := fp.read(CHUNK_BYTES):
            yield chunk


def instance_metadata(path: Path, *, bulk_data_url: Callable[[str], str]) -> dict[str, Any]:
    """DICOM JSON of one stored instance's header; pixel and other bulk data as BulkDataURIs."""
    with path.open("rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        has_pixels = _pixel_data_header(fp) is not None

    def bulk_uri(elem: DataElement) -> str:
        return bulk_data_url(f"{elem.tag:08X}")

    result = ds.to_json_dict(
        bulk_data_threshold=BULK_DATA_THRESHOLD,
        bulk_data_element_handler=bulk_uri,
        suppress_invalid_tags=True,
    )
    if SPECIFIC_CHARACTER_SET in result:
        # pydicom decoded every text value; JSON is always UTF-8.
        result[SPECIFIC_CHARACTER_SET] = {"vr": "CS", "Value": [UTF8_CHARSET]}
    stored_syntax = str(ds.file_meta.TransferSyntaxUID)
    result[AVAILABLE_TRANSFER_SYNTAX_UID] = {"vr": "UI", "Value": [stored_syntax]}
    if has_pixels:
        vr = "OB" if stored_syntax in ENCAPSULATED_FRAME_TYPES else "OW"
        result[PIXEL_DATA] = {"vr": vr, "BulkDataURI": bulk_data_url(PIXEL_DATA)}
    return dict(sorted(result.items()))


@dataclass(frozen=True)
class PixelDataHeader:
    """Where the Pixel Data value starts in the file and how long it is."""

    value_offset: int
    length: int


def _pixel_data_header(fp: BinaryIO) -> PixelDataHeader | None:
    """The Pixel Data element at ``fp``'s position (where stop_before_pixels left it)."""
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        return None
    group, elem = struct.unpack("<HH", head[:4])
    if (group << 16) | elem != PIXEL_DATA_TAG:
        return None
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        if vr in _LONG_VRS:
            (length,) = struct.unpack("<I", fp.read(4))
            return PixelDataHeader(value_offset=start + 12, length=length)
        (length,) = struct.unpack("<H", head[6:8])
        return PixelDataHeader(value_offset=start + 8, length=length)
    (length,) = struct.unpack("<I", head[4:8])
    return PixelDataHeader(value_offset=start + 8, length=length)


def _native_frame_bytes(ds: Dataset) -> int:
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits % 8:
        raise NotAcceptable("frames of bit-packed pixel data are not served")
    rows = int(ds.get("Rows", 0) or 0)
    columns = int(ds.get("Columns", 0) or 0)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    return rows * columns * samples * bits // 8


def read_frames(path: Path, frame_numbers: list[int]) -> Iterator[bytes]:
    """The requested frames (1-based) of a stored image; NotFound for a missing frame.

    The file is checked and the first frame read before anything is yielded, so a bad
    request fails before a response starts.
    """
    fp = path.open("rb")
    try:
        ds = dcmread(fp, stop_before_pixels=True)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        header = _pixel_data_header(fp)
        if header is None:
            raise NotFound("the instance has no pixel data")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if any(n < 1 or n > frames for n in frame_numbers):
            raise NotFound(f"{FRAME_NOT_FOUND}: the instance has {frames} frame(s)")
        if syntax in NATIVE_LITTLE_ENDIAN:
            reader = _native_reader(fp, ds, header, frames)
        elif syntax in ENCAPSULATED_FRAME_TYPES:
            reader = _encapsulated_reader(fp, ds, header, frames)
        else:
            raise NotAcceptable(f"frames are not served for transfer syntax {syntax}")
        first = reader(frame_numbers[0])
    except ValueError as exc:  # pydicom could not find the frame in the fragments
        fp.close()
        raise NotFound(f"{FRAME_NOT_FOUND}: {exc}") from exc
    except BaseException:
        fp.close()
        raise
    return _frames(fp, first, reader, frame_numbers[1:])


def _frames(
    fp: BinaryIO, first: bytes, reader: Callable[[int], bytes], rest: list[int]
) -> Iterator[bytes]:
    with fp:
        yield first
        for number in rest:
            yield reader(number)


def _native_reader(
    fp: BinaryIO, ds: Dataset, header: PixelDataHeader, frames: int
) -> Callable[[int], bytes]:
    size = _native_frame_bytes(ds)
    if size == 0 or header.length == UNDEFINED_LENGTH or size * frames > header.length:
        raise NotFound("the pixel data is shorter than its frames")

    def read(number: int) -> bytes:
        fp.seek(header.value_offset + (number - 1) * size)
        return fp.read(size)

    return read


def _encapsulated_reader(
    fp: BinaryIO, ds: Dataset, header: PixelDataHeader, frames: int
) -> Callable[[int], bytes]:
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)

    def read(number: int) -> bytes:
        fp.seek(header.value_offset)
        frame: bytes = get_frame(fp, number - 1, extended_offsets=offsets, number_of_frames=frames)
        return frame

    return read


def frame_count(path: Path) -> int:
    """How many frames the stored image has (0 when it has no pixel data)."""
    with path.open("rb") as fp:
        ds = dcmread(fp, stop_before_pixels=True)
        if _pixel_data_header(fp) is None:
            return 0
    return int(ds.get("NumberOfFrames", 1) or 1)


def bulk_value(path: Path, tag: int) -> bytes:
    """The value of a top-level binary element other than Pixel Data; NotFound if absent."""
    ds = dcmread(path, stop_before_pixels=True)
    elem = ds.get(tag)
    if elem is None or not isinstance(elem.value, bytes):
        raise NotFound("no such bulk data")
    return elem.value
