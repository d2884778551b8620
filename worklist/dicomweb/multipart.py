"""``multipart/related`` bodies (RFC 2387) written part by part, never held whole in memory."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from worklist.dicomweb.media import MULTIPART_RELATED

CRLF = b"\r\n"


@dataclass(frozen=True)
class Part:
    """One body part: its Content-Type and a callable producing its bytes lazily."""

    content_type: str
    chunks: Callable[[], Iterable[bytes]]


def new_boundary() -> str:
    """A boundary that cannot occur by chance in DICOM data."""
    return f"dicomweb-{secrets.token_hex(16)}"


def content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The response's Content-Type for parts of ``part_type``."""
    value = f'{MULTIPART_RELATED}; type="{part_type}"'
    if transfer_syntax is not None:
        value += f"; transfer-syntax={transfer_syntax}"
    return f"{value}; boundary={boundary}"


def stream_parts(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The multipart body: each part's headers, then its chunks as they are read."""
    marker = b"--" + boundary.encode("ascii")
    for part in parts:
        headers = marker + CRLF + b"Content-Type: " + part.content_type.encode("ascii") + CRLF
        yield headers + CRLF
        yield from part.chunks()
        yield CRLF
    yield marker + b"--" + CRLF
