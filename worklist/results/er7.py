"""HL7 v2 ER7 encoding: delimiters, escaping, timestamps (parsing is the ``hl7`` library's).

We always send the standard delimiters (MSH-1 ``|``, MSH-2 ``^~\\&``). Text is escaped
with the standard sequences, so a report may hold any of them; line breaks become
``\\.br\\`` where the field is formatted text (FT), and other control characters a hex
escape (``\\X09\\``). Everything else is sent as it is, in UTF-8 (MSH-18).
"""

from __future__ import annotations

from datetime import date, datetime

from worklist.timezones import SITE_TIMEZONE

FIELD = "|"
COMPONENT = "^"
REPETITION = "~"
ESCAPE = "\\"
SUBCOMPONENT = "&"
ENCODING_CHARACTERS = COMPONENT + REPETITION + ESCAPE + SUBCOMPONENT
SEGMENT_TERMINATOR = "\r"
LINE_BREAK = ESCAPE + ".br" + ESCAPE
CHARACTER_SET = "UNICODE UTF-8"
ENCODING = "utf-8"

_ESCAPES = {
    FIELD: ESCAPE + "F" + ESCAPE,
    COMPONENT: ESCAPE + "S" + ESCAPE,
    REPETITION: ESCAPE + "R" + ESCAPE,
    SUBCOMPONENT: ESCAPE + "T" + ESCAPE,
    ESCAPE: ESCAPE + "E" + ESCAPE,
}


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


def normalise_newlines(text: str) -> str:
    """``\\r\\n`` and ``\\r`` as ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def escape_char(char: str, *, line_breaks: bool) -> str:
    """One character as it goes into a field."""
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char == "\n":
        return LINE_BREAK if line_breaks else " "
    if _is_control(char):
        return f"{ESCAPE}X{ord(char):02X}{ESCAPE}"
    return char


def escape(text: str | None, *, line_breaks: bool = False) -> str:
    """``text`` escaped for a field; line breaks as ``\\.br\\`` (FT) or else spaces."""
    if not text:
        return ""
    return "".join(escape_char(c, line_breaks=line_breaks) for c in normalise_newlines(text))


def join(separator: str, parts: tuple[str, ...] | list[str]) -> str:
    """Parts joined by ``separator``, trailing empty parts left out (as HL7 prefers)."""
    items = list(parts)
    while items and not items[-1]:
        items.pop()
    return separator.join(items)


def components(*parts: str | None) -> str:
    """Components of one field (each already escaped), e.g. ``code^text^system``."""
    return join(COMPONENT, [p or "" for p in parts])


def subcomponents(*parts: str | None) -> str:
    """Subcomponents of one component (each already escaped)."""
    return join(SUBCOMPONENT, [p or "" for p in parts])


def segment(name: str, *fields: str | None) -> str:
    """One segment: its id and fields 1..n (each already encoded)."""
    return join(FIELD, [name, *(f or "" for f in fields)])


def msh(*fields: str | None) -> str:
    """The MSH segment from MSH-3 on (MSH-1 and MSH-2 are the standard delimiters)."""
    return "MSH" + FIELD + ENCODING_CHARACTERS + FIELD + join(FIELD, [f or "" for f in fields])


def message(segments: list[str]) -> str:
    """Segments as one message (each terminated by a carriage return)."""
    return "".join(s + SEGMENT_TERMINATOR for s in segments)


def timestamp(value: datetime) -> str:
    """A TS/DTM to the second in the network's wall-clock time, with its offset."""
    return value.astimezone(SITE_TIMEZONE).strftime("%Y%m%d%H%M%S%z")


def hl7_date(value: date) -> str:
    """A DT: ``YYYYMMDD``."""
    return value.strftime("%Y%m%d")
