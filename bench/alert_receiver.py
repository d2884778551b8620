"""Webhook receiver for ``bench.alerts``, run as its own process.

    WEBHOOK_SECRET=whsec_... python -m bench.alert_receiver PORT

A minimal asyncio HTTP/1.1 keep-alive server on loopback (uvloop when installed) that
does what a trust's alerting system would: it verifies every request's Standard
Webhooks signature with the official ``standardwebhooks`` library against the site's
secret, answers 204 (400 when the signature does not verify), and writes one JSON line
per request to stdout: arrival time, ``webhook-id``, event type, the alert id from the
payload's ``data.id``, whether it verified. The arrival time is ``time.monotonic()``
when the whole body has been read: on Linux that is CLOCK_MONOTONIC, the same clock in
every process of the machine, so the benchmark compares it with its own send times.

It runs in its own process so that the benchmark's SSE client and alert sender (and
their GIL) do not delay it. The secret comes in the environment, never in argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

with contextlib.suppress(ImportError):
    import uvloop

SECRET_ENV = "WEBHOOK_SECRET"
MAX_HEADER_BYTES = 65536
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
BAD_SIGNATURE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nbad sig"
READY_LINE = "ready"


class BadRequest(ValueError):
    """Not an HTTP/1.1 request this receiver understands."""


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One request: (request line, lower-cased headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
    return lines[0], headers, body


def describe(
    request_line: str, headers: dict[str, str], body: bytes, at: float, secret: Webhook
) -> dict[str, Any]:
    """Verify one delivery and say what it was (the JSON line written to stdout)."""
    record: dict[str, Any] = {
        "at": at,
        "wall": time.time(),
        "request": request_line,
        "webhook_id": headers.get("webhook-id", ""),
        "bytes": len(body),
    }
    try:
        payload = secret.verify(body, headers)
    except (WebhookVerificationError, ValueError) as exc:
        record.update(verified=False, error=repr(exc)[:200])
        return record
    data = payload.get("data") if isinstance(payload, dict) else None
    record.update(
        verified=True,
        type=payload.get("type") if isinstance(payload, dict) else None,
        alert_id=data.get("id") if isinstance(data, dict) else None,
    )
    return record


async def serve(port: int, secret: Webhook) -> None:
    """Accept connections on ``port`` until killed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request_line, headers, body = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                at = time.monotonic()
                record = describe(request_line, headers, body, at, secret)
                writer.write(NO_CONTENT if record["verified"] else BAD_SIGNATURE)
                sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()
                if headers.get("connection", "").lower() == "close":
                    await writer.drain()
                    return
        except (asyncio.LimitOverrunError, ValueError) as exc:
            sys.stderr.write(f"bad request: {exc!r}\n")
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=MAX_HEADER_BYTES)
    sys.stdout.write(READY_LINE + "\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    secret_text = os.environ.get(SECRET_ENV, "")
    if len(args) != 1 or not secret_text:
        print(f"usage: {SECRET_ENV}=whsec_... python -m bench.alert_receiver PORT", file=sys.stderr)
        return 2
    secret = Webhook(secret_text)
    runner = uvloop.run if "uvloop" in sys.modules else asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(int(args[0]), secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
