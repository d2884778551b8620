"""Accept negotiation: what a viewer asks for against what is stored (we never transcode)."""

from __future__ import annotations

import pytest

from worklist.dicomweb.media import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    NotAcceptable,
    accepts_stored_instances,
    negotiate_frames,
    parse_accept,
)

JPEG = "1.2.840.10008.1.2.4.50"


def test_accept_ranges_are_ordered_by_quality_and_q0_is_dropped() -> None:
    ranges = parse_accept('image/png;q=0, multipart/related; type="image/jpeg";q=0.5, */*')
    assert [(r.media_type, r.part_type) for r in ranges] == [
        ("*/*", None),
        ("multipart/related", "image/jpeg"),
    ]


@pytest.mark.parametrize(
    ("accept", "stored", "expected"),
    [
        (None, IMPLICIT_VR_LITTLE_ENDIAN, ("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN)),
        (
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
            JPEG,
            ("application/octet-stream", JPEG),
        ),
        ('multipart/related; type="image/jpeg"', JPEG, ("image/jpeg", JPEG)),
        ('multipart/related; type="*/*"', JPEG, ("image/jpeg", JPEG)),
        (
            'multipart/related; type="application/octet-stream"',
            EXPLICIT_VR_LITTLE_ENDIAN,
            ("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN),
        ),
    ],
)
def test_frames_are_labelled_with_their_stored_syntax(
    accept: str | None, stored: str, expected: tuple[str, str]
) -> None:
    chosen = negotiate_frames(accept, stored)
    assert (chosen.media_type, chosen.transfer_syntax) == expected


@pytest.mark.parametrize(
    ("accept", "stored"),
    [
        ('multipart/related; type="application/octet-stream"', JPEG),
        ('multipart/related; type="image/jp2"', JPEG),
        ("multipart/related; type=image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.51", JPEG),
        (None, "1.2.840.10008.1.2.2"),
    ],
)
def test_frames_we_would_have_to_transcode_are_not_acceptable(
    accept: str | None, stored: str
) -> None:
    with pytest.raises(NotAcceptable):
        negotiate_frames(accept, stored)


def test_instances_are_acceptable_only_in_their_stored_syntaxes() -> None:
    stored = {EXPLICIT_VR_LITTLE_ENDIAN, JPEG}
    assert accepts_stored_instances(None, stored)
    assert accepts_stored_instances('multipart/related; type="application/dicom"', stored)
    assert accepts_stored_instances(
        'multipart/related; type="application/dicom"; transfer-syntax=*', stored
    )
    assert not accepts_stored_instances(
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG}', stored
    )
    assert not accepts_stored_instances("application/dicom+json", stored)
