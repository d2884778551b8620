"""Is a received dataset complete? Walk its element headers, seeking over the values.

A sender that cuts a file short (inside Pixel Data, typically) still sends a dataset
pydicom can read up to Pixel Data. Here every element's length must fit in the data
received (and inside its sequence or item), sequences and items must be delimited,
encapsulated Pixel Data must be a well-formed sequence of fragments, and native Pixel
Data must be as long as Rows, Columns, Samples per Pixel, Bits Allocated and Number of
Frames say. Values are never loaded (only the few image attributes, a few bytes each),
so memory stays bounded whatever the instance size; a deflated dataset is inflated in
chunks as it is walked.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from pydicom.uid import UID

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
UNDEFINED_LENGTH = 0xFFFFFFFF
ITEM = (0xFFFE, 0xE000)
ITEM_DELIMITER = (0xFFFE, 0xE00D)
SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
PIXEL_DATA = (0x7FE0, 0x0010)
TRANSFER_SYNTAX_UID = (0x0002, 0x0010)
META_GROUP = 0x0002
# Explicit VRs whose length is 4 bytes after 2 reserved ones (Part 5 7.1.2).
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
# Image attributes Pixel Data's length depends on (group 0028), read at the top level.
ROWS, COLUMNS = (0x0028, 0x0010), (0x0028, 0x0011)
SAMPLES_PER_PIXEL, BITS_ALLOCATED = (0x0028, 0x0002), (0x0028, 0x0100)
NUMBER_OF_FRAMES, PHOTOMETRIC = (0x0028, 0x0008), (0x0028, 0x0004)
_IMAGE_ATTRIBUTES = frozenset(
    {ROWS, COLUMNS, SAMPLES_PER_PIXEL, BITS_ALLOCATED, NUMBER_OF_FRAMES, PHOTOMETRIC}
)
MAX_ATTRIBUTE_LENGTH = 64
MAX_SEQUENCE_DEPTH = 32
INFLATE_CHUNK = 1 << 16


class IncompleteDataset(Exception):
    """The received data is not a complete dataset; the message says why, in DICOM terms."""


def check_complete(path: Path) -> None:
    """Raise IncompleteDataset unless the DICOM file at ``path`` holds a complete dataset."""
    with path.open("rb") as handle:
        raw = _FileStream(handle)
        raw.skip(PREAMBLE_LENGTH)
        if raw.read(len(MAGIC)) != MAGIC:
            raise IncompleteDataset("no DICOM file header")
        syntax = UID(_read_meta(raw))
        stream: _Stream = _InflatingStream(handle) if syntax.is_deflated else raw
        walker = _Walker(stream, explicit=not syntax.is_implicit_VR, little=syntax.is_little_endian)
        walker.walk_dataset(end=None, delimited=False, depth=0)
        stream.finish()
        walker.check_pixel_length()


def _read_meta(stream: _FileStream) -> str:
    syntax = ""
    while True:
        start = stream.tell()
        group, element = struct.unpack("<HH", stream.read(4))
        if group != META_GROUP:
            stream.seek(start)
            return syntax
        vr = stream.read(2)
        if vr in LONG_VRS:
            stream.skip(2)
            (length,) = struct.unpack("<L", stream.read(4))
        else:
            (length,) = struct.unpack("<H", stream.read(2))
        value = stream.read(length)
        if (group, element) == TRANSFER_SYNTAX_UID:
            syntax = value.decode("ascii", errors="replace").strip(" \x00")


class _Walker:
    def __init__(self, stream: _Stream, *, explicit: bool, little: bool) -> None:
        self.stream = stream
        self.explicit = explicit
        self.little = little
        self.attributes: dict[tuple[int, int], bytes] = {}
        self.native_pixel_length: int | None = None

    def walk_dataset(self, *, end: int | None, delimited: bool, depth: int) -> None:
        """Walk elements until ``end``, an item delimiter (``delimited``) or the end of data."""
        stream = self.stream
        order = "<" if self.little else ">"
        while True:
            position = stream.tell()
            if end is not None and position >= end:
                if position == end:
                    return
                raise IncompleteDataset("element lengths do not add up to their item's")
            if end is None and not delimited and stream.at_end():
                return
            tag = struct.unpack(order + "HH", stream.read(4))
            if tag[0] == ITEM[0]:
                stream.read(4)
                if tag == ITEM_DELIMITER and delimited:
                    return
                raise IncompleteDataset(f"unexpected {_name(tag)} in a dataset")
            if self.explicit:
                vr = stream.read(2)
                if vr in LONG_VRS:
                    stream.skip(2)
                    (length,) = struct.unpack(order + "L", stream.read(4))
                else:
                    (length,) = struct.unpack(order + "H", stream.read(2))
            else:
                vr = b""
                (length,) = struct.unpack(order + "L", stream.read(4))
            if length != UNDEFINED_LENGTH and end is not None and stream.tell() + length > end:
                raise IncompleteDataset(f"{_name(tag)} runs past the end of its item")
            if tag == PIXEL_DATA:  # also an icon's, nested in a sequence item
                self._pixel_data(length, top_level=depth == 0)
            elif length == UNDEFINED_LENGTH:
                self._sequence(tag, vr, depth + 1)
            elif depth == 0 and tag in _IMAGE_ATTRIBUTES and length <= MAX_ATTRIBUTE_LENGTH:
                self.attributes[tag] = stream.read(length, inside=tag)
            else:
                stream.skip(length, inside=tag)

    def _sequence(self, tag: tuple[int, int], vr: bytes, depth: int) -> None:
        if depth > MAX_SEQUENCE_DEPTH:
            raise IncompleteDataset("sequences nested too deeply")
        if vr not in (b"", b"SQ", b"UN"):
            raise IncompleteDataset(f"{_name(tag)} has an undefined length")
        # An undefined-length UN holds an implicit VR little endian sequence (Part 5 6.2.2).
        inner = self if vr != b"UN" else _Walker(self.stream, explicit=False, little=True)
        order = "<" if inner.little else ">"
        while True:
            item_tag = struct.unpack(order + "HH", self.stream.read(4, inside=tag))
            (length,) = struct.unpack(order + "L", self.stream.read(4, inside=tag))
            if item_tag == SEQUENCE_DELIMITER:
                return
            if item_tag != ITEM:
                raise IncompleteDataset(f"{_name(tag)} is not delimited")
            if length == UNDEFINED_LENGTH:
                inner.walk_dataset(end=None, delimited=True, depth=depth)
            else:
                end = self.stream.tell() + length
                self.stream.require(length, inside=tag)
                inner.walk_dataset(end=end, delimited=False, depth=depth)

    def _pixel_data(self, length: int, *, top_level: bool) -> None:
        if length != UNDEFINED_LENGTH:
            self.stream.skip(length, inside=PIXEL_DATA)
            if top_level:
                self.native_pixel_length = length
            return
        order = "<" if self.little else ">"
        items = 0
        while True:
            tag = struct.unpack(order + "HH", self.stream.read(4, inside=PIXEL_DATA))
            (size,) = struct.unpack(order + "L", self.stream.read(4, inside=PIXEL_DATA))
            if tag == SEQUENCE_DELIMITER:
                break
            if tag != ITEM or size == UNDEFINED_LENGTH:
                raise IncompleteDataset("encapsulated Pixel Data has a malformed item")
            self.stream.skip(size, inside=PIXEL_DATA)
            items += 1
        if items < 2:  # the Basic Offset Table item, then at least one fragment
            raise IncompleteDataset("encapsulated Pixel Data has no fragments")

    def check_pixel_length(self) -> None:
        """Native Pixel Data must hold as many bytes as the image attributes say."""
        if self.native_pixel_length is None:
            return
        expected = self._expected_pixel_length()
        if expected is not None and self.native_pixel_length < expected:
            raise IncompleteDataset("Pixel Data is shorter than Rows x Columns x ... require")

    def _expected_pixel_length(self) -> int | None:
        rows, columns, bits = (self._us(t) for t in (ROWS, COLUMNS, BITS_ALLOCATED))
        if rows is None or columns is None or bits is None:
            return None  # not enough to tell: the header check will judge the instance
        samples = self._us(SAMPLES_PER_PIXEL) or 1
        frames = self._integer_string(NUMBER_OF_FRAMES) or 1
        pixels = rows * columns * samples * frames
        length = (pixels + 7) // 8 if bits == 1 else pixels * bits // 8
        if self._text(PHOTOMETRIC) == "YBR_FULL_422":
            length = length // 3 * 2  # chroma sampled every other pixel (Part 3 C.7.6.3.1.2)
        return length

    def _us(self, tag: tuple[int, int]) -> int | None:
        value = self.attributes.get(tag)
        if value is None or len(value) < 2:
            return None
        return int(struct.unpack(("<" if self.little else ">") + "H", value[:2])[0])

    def _integer_string(self, tag: tuple[int, int]) -> int | None:
        try:
            return int(self._text(tag) or "")
        except ValueError:
            return None

    def _text(self, tag: tuple[int, int]) -> str:
        return self.attributes.get(tag, b"").decode("ascii", errors="replace").strip(" \x00")


def _name(tag: tuple[int, int]) -> str:
    return f"({tag[0]:04X},{tag[1]:04X})"


class _Stream:
    """Bytes of a dataset, read and skipped forwards; running out raises IncompleteDataset."""

    def tell(self) -> int:
        raise NotImplementedError

    def read(self, count: int, *, inside: tuple[int, int] | None = None) -> bytes:
        raise NotImplementedError

    def skip(self, count: int, *, inside: tuple[int, int] | None = None) -> None:
        raise NotImplementedError

    def require(self, count: int, *, inside: tuple[int, int] | None = None) -> None:
        """Fail unless ``count`` more bytes exist (without consuming them)."""

    def at_end(self) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        """Fail if the data ended early in a way only the end reveals."""


def _truncated(inside: tuple[int, int] | None) -> IncompleteDataset:
    where = f" inside {_name(inside)}" if inside else ""
    return IncompleteDataset(f"dataset truncated{where}")


class _FileStream(_Stream):
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = handle.seek(0, 2)
        handle.seek(0)

    def tell(self) -> int:
        return self.handle.tell()

    def seek(self, position: int) -> None:
        self.handle.seek(position)

    def read(self, count: int, *, inside: tuple[int, int] | None = None) -> bytes:
        data = self.handle.read(count)
        if len(data) != count:
            raise _truncated(inside)
        return data

    def skip(self, count: int, *, inside: tuple[int, int] | None = None) -> None:
        self.require(count, inside=inside)
        self.handle.seek(count, 1)

    def require(self, count: int, *, inside: tuple[int, int] | None = None) -> None:
        if self.handle.tell() + count > self.size:
            raise _truncated(inside)

    def at_end(self) -> bool:
        return self.handle.tell() >= self.size


class _InflatingStream(_Stream):
    """A deflated dataset (Part 5 A.5), inflated a chunk at a time as it is walked."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.buffer = b""
        self.position = 0

    def tell(self) -> int:
        return self.position

    def _fill(self, wanted: int) -> None:
        while len(self.buffer) < wanted and not self.inflater.eof:
            pending = self.inflater.unconsumed_tail or self.handle.read(INFLATE_CHUNK)
            if not pending:  # input exhausted before the deflate stream ended
                self.buffer += self.inflater.flush()
                return
            try:
                out = self.inflater.decompress(pending, INFLATE_CHUNK)
            except zlib.error as exc:
                raise IncompleteDataset("deflated dataset is corrupt") from exc
            if not out and self.inflater.unconsumed_tail == pending:
                return  # no progress: nothing more will come out
            self.buffer += out

    def read(self, count: int, *, inside: tuple[int, int] | None = None) -> bytes:
        self._fill(count)
        if len(self.buffer) < count:
            raise _truncated(inside)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        self.position += count
        return data

    def skip(self, count: int, *, inside: tuple[int, int] | None = None) -> None:
        while count > 0:
            step = min(count, INFLATE_CHUNK)
            self.read(step, inside=inside)
            count -= step

    def at_end(self) -> bool:
        self._fill(1)
        return not self.buffer

    def finish(self) -> None:
        if not self.inflater.eof:
            raise IncompleteDataset("deflated dataset is truncated")
