"""One ORU^R01 over MLLP and what the RIS answered (no database here).

A connection per message: connect, send, read the acknowledgement, close, all within
the timeout. ``AA`` (or ``CA``) delivers; ``AE``/``CE``, an acknowledgement of another
message, no answer, a refused or dropped connection are tried again; ``AR``/``CR`` is a
refusal for good. The recorded error is ours (the code and any ERR-3 error codes), never
the RIS's text, which may quote the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7
from hl7.mllp import InvalidBlockError, open_hl7_connection

from worklist.outbox import repository
from worklist.outbox.sender import AttemptResult
from worklist.results import er7

ACCEPT = frozenset({"AA", "CA"})
ERROR = frozenset({"AE", "CE"})
REJECT = frozenset({"AR", "CR"})
# An acknowledgement is a few hundred bytes; a longer answer is not one.
MAX_ACK_BYTES = 64 * 1024
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,20}$")


@dataclass(frozen=True)
class Acknowledgement:
    """MSA-1, MSA-2 and the ERR-3 error codes of an ACK."""

    code: str
    control_id: str
    error_codes: tuple[str, ...] = ()


def parse_ack(text: str) -> Acknowledgement:
    """The acknowledgement in ``text``; ValueError when it is not an HL7 ACK.

    Blank segments and ``\n`` line ends (some senders add them) are tolerated.
    """
    lines = [line for line in er7.normalise_newlines(text).split("\n") if line.strip()]
    try:
        message = hl7.parse(er7.SEGMENT_TERMINATOR.join(lines))
        msa = message.segment("MSA")
    except (KeyError, IndexError, hl7.ParseException) as exc:
        raise ValueError("not an HL7 acknowledgement") from exc
    codes: list[str] = []
    with contextlib.suppress(KeyError):
        for err in message.segments("ERR"):
            # v2.5 ERR-3 (CWE), else the v2.3 ERR-1 (ELD) code component.
            for value in (_part(err, 3, 1), _part(err, 1, 4)):
                if value and _CODE.match(value):
                    codes.append(value)
                    break
    return Acknowledgement(
        code=_part(msa, 1, 1).upper(), control_id=_part(msa, 2, 1), error_codes=tuple(codes)
    )


def _part(segment: hl7.Segment, field: int, component: int) -> str:
    try:
        return str(segment.extract_field(field_num=field, component_num=component)).strip()
    except (IndexError, KeyError, ValueError):
        return ""


def classify(ack: Acknowledgement, control_id: str) -> tuple[str, str | None]:
    """The attempt's outcome and our error text for an acknowledgement of ``control_id``."""
    codes = f" (error {', '.join(ack.error_codes)})" if ack.error_codes else ""
    if ack.control_id != control_id:
        return repository.OUTCOME_ERROR, "acknowledgement of another message (MSA-2)"
    if ack.code in ACCEPT:
        return repository.OUTCOME_DELIVERED, None
    if ack.code in REJECT:
        return repository.OUTCOME_REJECTED, f"{ack.code}: rejected by the RIS{codes}"
    if ack.code in ERROR:
        return repository.OUTCOME_FAILED, f"{ack.code}: error at the RIS{codes}"
    return repository.OUTCOME_ERROR, "acknowledgement code not AA, AE or AR (MSA-1)"


def describe_failure(exc: BaseException, *, timeout: float) -> tuple[str, str]:
    """The outcome and our own error text for a send that got no acknowledgement."""
    if isinstance(exc, TimeoutError):
        return repository.OUTCOME_TIMEOUT, f"timeout: no acknowledgement within {timeout:g}s"
    if isinstance(exc, asyncio.IncompleteReadError):
        return repository.OUTCOME_ERROR, "connection closed before an acknowledgement"
    if isinstance(exc, InvalidBlockError | ValueError | UnicodeDecodeError):
        return repository.OUTCOME_ERROR, "protocol error: the answer was not an MLLP-framed ACK"
    if isinstance(exc, ConnectionRefusedError):
        return repository.OUTCOME_ERROR, "connection failed: refused"
    if isinstance(exc, OSError):
        # The operating system's text (no peer data in it).
        reason = exc.strerror or type(exc).__name__
        return repository.OUTCOME_ERROR, f"connection failed: {reason}"
    return repository.OUTCOME_ERROR, f"not sent ({type(exc).__name__})"


async def exchange(host: str, port: int, message: str, *, timeout: float) -> str:
    """Send ``message`` in one MLLP block and return the block that answers it."""
    async with asyncio.timeout(timeout):
        reader, writer = await open_hl7_connection(
            host, port, limit=MAX_ACK_BYTES, encoding=er7.ENCODING
        )
        try:
            writer.writeblock(message.encode(er7.ENCODING))
            await writer.drain()
            block: bytes = await reader.readblock()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return block.decode(er7.ENCODING)


async def send_message(
    host: str, port: int, message: str, *, control_id: str, timeout: float
) -> AttemptResult:
    """Send one ORU and classify the acknowledgement; never raises for I/O."""
    started_at = datetime.now(UTC)
    clock = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - clock) * 1000, 3)

    try:
        answer = await exchange(host, port, message, timeout=timeout)
        outcome, error = classify(parse_ack(answer), control_id)
    except Exception as exc:  # refused, reset, timeout, garbage: all retried
        outcome, error = describe_failure(exc, timeout=timeout)
    return AttemptResult(started_at, elapsed_ms(), outcome, error=error)
