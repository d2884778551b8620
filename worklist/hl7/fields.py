"""Reading HL7 v2: the bytes' character set, the MSH header, and fields of a segment
split by the ``hl7`` library as plain strings (repetitions, components, subcomponents).

The header is read from the raw first segment rather than from ``hl7.parse``, so an
acknowledgement can be built for a message that cannot be parsed, or whose start is all
that was kept (one over the size limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from worklist.hl7.errors import ErrorCode, Hl7Rejection, Location, error, reject
from worklist.timezones import SITE_TIMEZONE

DEFAULT_ENCODING_CHARACTERS = "^~\\&"
# MSH-18 values (HL7 table 0211) and the codec each names. Without MSH-18, UTF-8 is
# tried, then Latin-1 (which every byte string decodes as).
_CHARSETS = {
    "ASCII": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
}
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")
_ESCAPE_HEX = re.compile(r"^X([0-9A-Fa-f]{2})+$")

# Repetitions -> components -> subcomponents.
Components = list[list[str]]


def decode(data: bytes) -> str:
    """The message as text, in the character set its MSH-18 names; segments end in CR."""
    codec = declared_codec(data)
    try:
        text = data.decode(codec or "utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1" if codec is None else codec, errors="replace")
    # Senders on files and some engines end segments in LF or CRLF rather than CR.
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(line for line in text.split("\r") if line.strip())


def declared_codec(data: bytes) -> str | None:
    """The codec MSH-18 names (None when it names none we know); ACKs are sent in it."""
    first = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if len(first) < 8 or not first.startswith(b"MSH"):
        return None
    fields = first.split(first[3:4])
    if len(fields) < 18:
        return None
    name = fields[17].split(b"~", 1)[0].decode("ascii", errors="replace").strip().upper()
    return _CHARSETS.get(name)


@dataclass(frozen=True)
class Header:
    """MSH as sent: raw (still escaped) values for echoing into the ACK, and the parts
    we decide on."""

    field_separator: str
    encoding_characters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str
    trigger_event: str
    processing_id: str
    version: str

    @property
    def facility(self) -> str:
        """MSH-4.1, the Sending Facility's namespace id: what ``--hl7-facility`` registers."""
        component = self.encoding_characters[0]
        return self.sending_facility.split(component, 1)[0].strip()


def read_header(text: str) -> Header:
    """The MSH segment at the start of ``text``; AR when there is none."""
    first = text.split("\r", 1)[0]
    if len(first) < 8 or not first.startswith("MSH"):
        raise reject(ErrorCode.SEGMENT_SEQUENCE, "message does not start with MSH")
    separator = first[3]
    if separator.isalnum() or separator.isspace():
        raise reject(ErrorCode.DATA_TYPE, "invalid field separator", Location("MSH", 1, 1))
    parts = first.split(separator)
    encoding = parts[1]
    if len(encoding) < 4 or len(set(encoding[:4] + separator)) != 5:
        raise reject(ErrorCode.DATA_TYPE, "invalid encoding characters", Location("MSH", 1, 2))

    def field(n: int) -> str:
        # parts[0] is "MSH", MSH-1 is the separator itself: MSH-n is parts[n - 1].
        return parts[n - 1] if n - 1 < len(parts) else ""

    component = encoding[0]
    kind = field(9).split(component)
    return Header(
        field_separator=separator,
        encoding_characters=encoding[:4],
        sending_application=field(3),
        sending_facility=field(4),
        receiving_application=field(5),
        receiving_facility=field(6),
        control_id=field(10).strip(),
        message_type=kind[0].strip().upper(),
        trigger_event=kind[1].strip().upper() if len(kind) > 1 else "",
        processing_id=field(11),
        version=field(12).split(component, 1)[0].strip(),
    )


class Segment:
    """One segment with 1-based field access as strings, split here on demand.

    The ``hl7`` library's parse built a container for every value of every segment
    (most of the message's CPU); an order message reads a few dozen of them. Fields are
    split into repetitions, components and subcomponents, then leaves are unescaped
    (escape sequences never contain a separator, so splitting first is safe); our own
    small unescaper, as the library's logs the values it cannot decode, and logs never
    carry message content."""

    __slots__ = (
        "_component",
        "_esc",
        "_field_separator",
        "_fields",
        "_repetition",
        "_subcomponent",
        "name",
    )

    def __init__(self, fields: list[str], *, field_separator: str, encoding: str) -> None:
        self._fields = fields
        self._component = encoding[0]
        self._repetition = encoding[1]
        self._esc = encoding[2]
        self._subcomponent = encoding[3]
        self._field_separator = field_separator
        self.name = fields[0]

    def repetitions(self, n: int) -> list[Components]:
        """Field ``n``'s repetitions, each as components of subcomponents (empty ones
        left out)."""
        if n >= len(self._fields):
            return []
        return [
            components
            for rep in self._fields[n].split(self._repetition)
            if (components := self._convert(rep))
        ]

    def first(self, n: int) -> Components:
        """The first repetition of field ``n`` that says something (empty when none)."""
        if n < len(self._fields):
            for rep in self._fields[n].split(self._repetition):
                if components := self._convert(rep):
                    return components
        return []

    def _convert(self, rep: str) -> Components:
        # A repetition as lists of unescaped strings; [] when all of it is empty.
        if not rep or rep.strip(self._component + self._subcomponent) == "":
            return []
        esc, sub = self._esc, self._subcomponent
        return [
            [self._unescape(leaf) if esc in leaf else leaf for leaf in component.split(sub)]
            for component in rep.split(self._component)
        ]

    def get(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """One value of the first repetition of field ``n``, stripped; '' when absent."""
        return component_of(self.first(n), component, subcomponent)

    def _unescape(self, value: str) -> str:
        named = {
            "F": self._field_separator,
            "R": self._repetition,
            "S": self._component,
            "T": self._subcomponent,
            "E": self._esc,
            ".br": "\n",
            ".sp": "\n",
        }
        pieces = value.split(self._esc)
        out = [pieces[0]]
        # Odd pieces are escape sequences; an unterminated one is kept as text.
        for i in range(1, len(pieces), 2):
            if i + 1 >= len(pieces):
                out.append(self._esc + pieces[i])
                break
            sequence = pieces[i]
            if sequence in named:
                out.append(named[sequence])
            elif _ESCAPE_HEX.match(sequence):
                out.append(bytes.fromhex(sequence[1:]).decode("latin-1"))
            out.append(pieces[i + 1])
        return "".join(out)


def component_of(components: Components, component: int, subcomponent: int = 1) -> str:
    """Component ``component`` (subcomponent ``subcomponent``) of one repetition."""
    if component > len(components):
        return ""
    subs = components[component - 1]
    return subs[subcomponent - 1].strip() if subcomponent <= len(subs) else ""


def parse_datetime(value: str, location: Location) -> datetime | None:
    """An HL7 DTM/TS (``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]``) as an aware datetime.

    Without an offset it is a wall-clock time in England (``SITE_TIMEZONE``), as DICOM
    times are read. '' is None; anything else that is not a DTM is an AE.
    """
    value = value.strip()
    if not value:
        return None
    match = _DTM.match(value)
    if match is None:
        raise _bad_date(location)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        raise _bad_date(location) from None
    if offset is None:
        return moment.replace(tzinfo=SITE_TIMEZONE).astimezone(UTC)
    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
    zone = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
    return moment.replace(tzinfo=zone).astimezone(UTC)


def parse_date(value: str, location: Location) -> date | None:
    """The date part of a DT/DTM; None when absent or less precise than a day."""
    value = value.strip()
    if len(value) < 8:
        if value and not value.isdigit():
            raise _bad_date(location)
        return None
    try:
        return datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        raise _bad_date(location) from None


def _bad_date(location: Location) -> Hl7Rejection:
    return error(ErrorCode.DATA_TYPE, "invalid date/time", location)
