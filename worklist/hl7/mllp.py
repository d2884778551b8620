"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): ``0x0B message 0x1C 0x0D``.

``MllpReader`` is fed what the socket gives and returns what it completed. Memory is
bounded: a message longer than ``max_bytes`` is not kept, only its first bytes (for the
MSH the refusal echoes); the rest is skipped up to its end block, and the reader is
ready for the next message. Anything but a start block (or CR/LF) between messages is a
framing error: the connection is closed, since nothing after it can be trusted to start
a message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
# What is kept of an oversized message: enough for any MSH segment.
HEAD_BYTES = 4096
_BETWEEN_MESSAGES = frozenset(b"\r\n")


def frame(message: bytes) -> bytes:
    """``message`` in its MLLP envelope."""
    return START_BLOCK + message + END_BLOCK


@dataclass(frozen=True)
class Message:
    """A complete message (without its envelope)."""

    data: bytes


@dataclass(frozen=True)
class Oversized:
    """A complete message over the limit: only its start is kept."""

    head: bytes
    size: int


class FramingError(Exception):
    """The stream is not MLLP (no start block where a message must begin)."""


class _State(enum.Enum):
    BETWEEN = "between"
    IN_MESSAGE = "in_message"
    SKIPPING = "skipping"


class MllpReader:
    """Incremental MLLP deframer for one connection."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._state = _State.BETWEEN
        self._buffer = bytearray()
        self._scanned = 0
        self._head = b""
        self._skipped = 0

    @property
    def buffered(self) -> int:
        """Bytes held: never much more than ``max_bytes`` plus one chunk."""
        return len(self._buffer)

    @property
    def mid_message(self) -> bool:
        """Whether a message has started and not ended."""
        return self._state is not _State.BETWEEN

    def feed(self, chunk: bytes) -> list[Message | Oversized]:
        """The messages ``chunk`` completes, in order; raises ``FramingError``."""
        done: list[Message | Oversized] = []
        view = memoryview(chunk)
        while view:
            if self._state is _State.BETWEEN:
                view = self._start(view)
            elif self._state is _State.IN_MESSAGE:
                view = self._collect(view, done)
            else:
                view = self._skip(view, done)
        return done

    def _start(self, view: memoryview) -> memoryview:
        i = 0
        while i < len(view) and view[i] in _BETWEEN_MESSAGES:
            i += 1
        if i == len(view):
            return view[i:]
        if view[i] != START_BLOCK[0]:
            raise FramingError("data outside an MLLP block")
        self._state = _State.IN_MESSAGE
        self._buffer.clear()
        self._scanned = 0
        return view[i + 1 :]

    def _collect(self, view: memoryview, done: list[Message | Oversized]) -> memoryview:
        self._buffer += view
        # The end block may straddle two chunks: look again from one byte back.
        end = self._buffer.find(END_BLOCK, max(self._scanned - 1, 0))
        if end >= 0:
            if end > self._max:
                head = bytes(self._buffer[: min(end, HEAD_BYTES)])
                done.append(Oversized(head=head, size=end))
            else:
                done.append(Message(bytes(self._buffer[:end])))
            rest = memoryview(bytes(self._buffer[end + len(END_BLOCK) :]))
            self._buffer.clear()
            self._state = _State.BETWEEN
            return rest
        self._scanned = len(self._buffer)
        if len(self._buffer) > self._max + 1:
            self._head = bytes(self._buffer[:HEAD_BYTES])
            self._skipped = len(self._buffer) - 1
            # Keep the last byte: it may be the first half of the end block.
            del self._buffer[:-1]
            self._state = _State.SKIPPING
        return view[len(view) :]

    def _skip(self, view: memoryview, done: list[Message | Oversized]) -> memoryview:
        # ``_buffer`` holds the last byte skipped, in case it began the end block.
        if self._buffer == END_BLOCK[:1] and view[0] == END_BLOCK[1]:
            after = 1
        else:
            found = bytes(view).find(END_BLOCK)
            after = found + len(END_BLOCK) if found >= 0 else -1
        if after < 0:
            self._skipped += len(view)
            self._buffer[:] = view[-1:]
            return view[len(view) :]
        self._skipped += max(after - len(END_BLOCK), 0)
        done.append(Oversized(head=self._head, size=self._skipped))
        self._buffer.clear()
        self._state = _State.BETWEEN
        return view[after:]
