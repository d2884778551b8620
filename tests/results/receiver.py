"""A test RIS: an MLLP listener built on the ``hl7`` library that acknowledges ORU^R01s.

It runs ``hl7.mllp.start_hl7_server`` on loopback (port 0) in its own event loop and
thread, keeps every message it receives (the ER7 text as sent), and answers what the
test scripts: ``AA`` by default, ``AE`` or ``AR`` (with an ERR segment), no answer at
all (until it is closed), or a dropped connection.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hl7
import pytest
from hl7.mllp import start_hl7_server

# HL7 table 0357: what a RIS puts in ERR-3 for AE / AR.
ERROR_CODES = {"AE": "207", "AR": "204"}


@dataclass(frozen=True)
class Received:
    """One message as the RIS got it."""

    text: str
    at: float  # time.monotonic() on arrival
    answered: str | None  # the ACK code sent back, None when none was

    @property
    def message(self) -> Any:
        """The message parsed by the ``hl7`` library."""
        return hl7.parse(self.text)

    @property
    def control_id(self) -> str:
        """MSH-10."""
        return str(self.message.segment("MSH")[10])


@dataclass(frozen=True)
class Answer:
    """What to answer: an ACK code, after ``delay`` seconds; or nothing, or hang up."""

    code: str = "AA"
    delay: float = 0.0
    silent: bool = False  # keep the connection open and never answer
    hang_up: bool = False  # close the connection without answering


Behaviour = Callable[[str], Answer]


class MllpReceiver:
    """An MLLP listener on 127.0.0.1 recording every message and answering as told."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviour: Behaviour = lambda text: Answer()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="test-ris", daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "test RIS did not start"
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._closing = asyncio.Event()
        self._server = await start_hl7_server(
            self._handle, "127.0.0.1", 0, encoding="utf-8", limit=16 * 1024 * 1024
        )

    async def _handle(self, reader: Any, writer: Any) -> None:
        assert self._closing is not None
        try:
            while True:
                try:
                    block = await reader.readblock()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                text = block.decode("utf-8")
                answer = self.behaviour(text)
                code = None if answer.silent or answer.hang_up else answer.code
                with self._lock:
                    self.received.append(Received(text, time.monotonic(), code))
                if answer.hang_up:
                    return
                if answer.silent:
                    await self._closing.wait()
                    return
                if answer.delay:
                    await asyncio.sleep(answer.delay)  # a slow RIS, not a wait of the test's
                writer.writeblock(self.ack(text, answer.code).encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()

    @staticmethod
    def ack(text: str, code: str) -> str:
        """The acknowledgement of ``text`` (built by the ``hl7`` library), with ERR for AE/AR."""
        ack = str(hl7.parse(text).create_ack(ack_code=code, application="RIS")).rstrip("\r")
        if code in ERROR_CODES:
            ack += f"\rERR|||{ERROR_CODES[code]}^Rejected^HL70357|E"
        return ack + "\r"

    def messages(self) -> list[Received]:
        """Everything received so far, in arrival order."""
        with self._lock:
            return list(self.received)

    def acknowledged(self, code: str = "AA") -> list[Received]:
        """The messages answered with ``code``."""
        return [r for r in self.messages() if r.answered == code]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait until ``count`` messages arrived (a condition with a deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"the RIS got {len(self.messages())} of {count} messages")
            time.sleep(0.02)
        return self.messages()

    def close(self) -> None:
        """Stop listening and end the loop (silent connections are let go)."""

        async def stop() -> None:
            assert self._server is not None
            assert self._closing is not None
            self._closing.set()
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def ris() -> Iterator[MllpReceiver]:
    """A test RIS on a free loopback port."""
    receiver = MllpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
