"""Media types of DICOMweb responses and the negotiation of a request's ``Accept`` header.

We never transcode: a stored instance is served in the transfer syntax it arrived in,
so negotiation only decides whether the caller accepts what we have, and how to label it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worklist.errors import DomainError

DICOM_JSON = "application/dicom+json"
DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
MULTIPART_RELATED = "multipart/related"
JPEG = "image/jpeg"
PNG = "image/png"
ANY_IMAGE = "image/*"
ANY = "*/*"
ANY_TRANSFER_SYNTAX = "*"

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

# Pixel data of these is stored unencapsulated and little endian: frames are byte slices.
NATIVE_LITTLE_ENDIAN = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN})

# PS3.18 table 8.7.3-5: the media type of a frame in each compressed transfer syntax.
ENCAPSULATED_FRAME_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}

JSON_TYPES = frozenset({DICOM_JSON, "application/json", ANY, "application/*"})


class NotAcceptable(DomainError):
    """None of the media types the caller accepts can be served without transcoding."""

    status_code = 406


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``multipart/related; type=...; transfer-syntax=...``."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter (the media type of each part of a multipart body)."""
        return self.params.get("type")

    @property
    def transfer_syntax(self) -> str | None:
        """The ``transfer-syntax`` parameter, if any."""
        return self.params.get("transfer-syntax")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, best first (q=0 dropped); ``*/*`` when absent."""
    if not header or not header.strip():
        return [MediaRange(ANY)]
    ranges: list[tuple[float, int, MediaRange]] = []
    for index, item in enumerate(_split_outside_quotes(header, ",")):
        pieces = _split_outside_quotes(item, ";")
        media_type = pieces[0].strip().lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((-quality, index, MediaRange(media_type, params)))
    return [media for _, _, media in sorted(ranges, key=lambda r: (r[0], r[1]))]


def _type_matches(pattern: str | None, media_type: str) -> bool:
    if pattern is None or pattern in (ANY, "*"):
        return True
    major, _, minor = pattern.lower().partition("/")
    actual_major, _, actual_minor = media_type.partition("/")
    return major == actual_major and minor in ("*", actual_minor)


def _syntax_matches(wanted: str | None, stored: str, *, default_ok: bool) -> bool:
    if wanted is None:
        return default_ok
    return wanted in (ANY_TRANSFER_SYNTAX, stored)


def require_json(accept: str | None) -> None:
    """Raise NotAcceptable unless the caller accepts DICOM JSON."""
    for media in parse_accept(accept):
        if media.media_type in JSON_TYPES:
            return
    raise NotAcceptable(f"only {DICOM_JSON} is served here")


def accepts_stored_instances(accept: str | None, transfer_syntaxes: set[str]) -> bool:
    """True when the caller accepts Part 10 instances in every one of ``transfer_syntaxes``."""
    for media in parse_accept(accept):
        if media.media_type == ANY:
            return True
        if media.media_type not in (MULTIPART_RELATED, "multipart/*"):
            continue
        if not _type_matches(media.part_type, DICOM):
            continue
        # An Accept without transfer-syntax means "as stored": we never transcode.
        if all(
            _syntax_matches(media.transfer_syntax, ts, default_ok=True) for ts in transfer_syntaxes
        ):
            return True
    return False


@dataclass(frozen=True)
class FrameMedia:
    """How frames of one instance are labelled: part media type and transfer syntax."""

    media_type: str
    transfer_syntax: str

    def content_type(self) -> str:
        """The Content-Type of one part."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def negotiate_frames(accept: str | None, stored_syntax: str) -> FrameMedia:
    """Pick the media type for frames stored in ``stored_syntax``; NotAcceptable if none fits."""
    if stored_syntax in NATIVE_LITTLE_ENDIAN:
        # Raw little-endian pixels are the same bytes whichever LE syntax held them.
        natural, label = OCTET_STREAM, EXPLICIT_VR_LITTLE_ENDIAN
    elif stored_syntax in ENCAPSULATED_FRAME_TYPES:
        natural, label = ENCAPSULATED_FRAME_TYPES[stored_syntax], stored_syntax
    else:
        raise NotAcceptable(f"frames are not served for transfer syntax {stored_syntax}")
    for media in parse_accept(accept):
        if media.media_type == ANY:
            return FrameMedia(natural, label)
        if media.media_type not in (MULTIPART_RELATED, "multipart/*"):
            continue
        part = media.part_type
        if part is not None and part.lower() == OCTET_STREAM:
            # OHIF asks for octet-stream with transfer-syntax=*: any syntax, labelled.
            if _syntax_matches(media.transfer_syntax, label, default_ok=natural == OCTET_STREAM):
                return FrameMedia(OCTET_STREAM, label)
            continue
        if _type_matches(part, natural) and _syntax_matches(
            media.transfer_syntax, label, default_ok=True
        ):
            return FrameMedia(natural, label)
    raise NotAcceptable(
        f"frames of this instance are available only as {natural} "
        f"(transfer syntax {label}); we do not transcode"
    )


# Rendered and thumbnail resources (PS3.18 8.3.5, 8.3.6): single-part images, JPEG first.
RENDERED_TYPES = (JPEG, PNG)


def negotiate_rendered(accept: str | None, accept_parameter: str | None = None) -> str:
    """The image type a rendered resource is served as; the ``accept`` query parameter wins.

    NotAcceptable unless the caller takes JPEG or PNG (``image/*`` and ``*/*`` mean JPEG).
    """
    wanted = accept_parameter if accept_parameter and accept_parameter.strip() else accept
    for media in parse_accept(wanted):
        if media.media_type in RENDERED_TYPES:
            return media.media_type
        if media.media_type in (ANY, ANY_IMAGE):
            return JPEG
    raise NotAcceptable(f"rendered images are served as {' or '.join(RENDERED_TYPES)}")
