"""Talking to the listener as a RIS does: the ``hl7`` library's MLLP client, and raw
sockets for what no well-behaved client sends."""

from __future__ import annotations

import asyncio
import socket
import struct

import hl7
from hl7.mllp import open_hl7_connection

TIMEOUT = 30.0


def exchange(port: int, *messages: bytes) -> list[hl7.Message]:
    """Send each message and await its ACK before the next, on one connection."""

    async def run() -> list[hl7.Message]:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        acks = []
        try:
            for data in messages:
                writer.writeblock(data)
                await writer.drain()
                acks.append(await asyncio.wait_for(reader.readmessage(), TIMEOUT))
        finally:
            writer.close()
            await writer.wait_closed()
        return acks

    return asyncio.run(run())


def pipelined(port: int, *messages: bytes) -> list[hl7.Message]:
    """Send every message at once, then read the ACKs."""

    async def run() -> list[hl7.Message]:
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        try:
            for data in messages:
                writer.writeblock(data)
            await writer.drain()
            return [await asyncio.wait_for(reader.readmessage(), TIMEOUT) for _ in messages]
        finally:
            writer.close()
            await writer.wait_closed()

    return asyncio.run(run())


def msa(ack: hl7.Message) -> tuple[str, str]:
    """MSA-1 and MSA-2 of an ACK."""
    return str(ack["MSA.F1"]), str(ack["MSA.F2"])


def err_code(ack: hl7.Message) -> str:
    """The table 0357 code of the ACK's ERR (ERR-3.1 from v2.5, else ERR-1.4.1)."""
    version = str(ack.segment("MSH")(12))
    if version.startswith("2.5"):
        return str(ack["ERR.F3.R1.C1"])
    return str(ack["ERR.F1.R1.C4.S1"])


def raw(port: int) -> socket.socket:
    """A plain TCP connection to the listener."""
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the listener sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def reset(sock: socket.socket) -> None:
    """Drop the connection abruptly (RST), as a crashed sender or a cut cable does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
