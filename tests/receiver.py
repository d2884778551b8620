"""A real webhook receiver on loopback that verifies Standard Webhooks signatures.

It checks every request with the ``standardwebhooks`` library (what an integrator
would use) against the secrets it was given, answers 400 to a bad signature, and
otherwise answers what the test scripted (default 204). Every request is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float  # time.monotonic() on arrival
    status: int  # what the receiver answered

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result

    @property
    def type(self) -> str:
        return str(self.payload.get("type"))


@dataclass(frozen=True)
class Reply:
    """What to answer: status (and reason phrase), headers, body, a delay (timeouts)."""

    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b""
    reason: str | None = None


Behaviour = Callable[["Received"], Reply]


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) refuses connections when dispatchers open dozens at
    # once, which a test would count as failed attempts.
    request_queue_size = 128


class WebhookReceiver:
    """An HTTP server in a thread; ``url`` is where to point a site's webhook."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.requests: list[Received] = []
        self.behaviour: Behaviour = lambda _: Reply()
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request (kill -9 tests): nothing was delivered
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = receiver.verify(body, headers)
                probe = Received(self.path, headers, body, verified, time.monotonic(), 0)
                reply = receiver.behaviour(probe) if verified else Reply(400, body=b"bad sig")
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status, reply.reason)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout tests)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, headers, body, verified, probe.at, reply.status)
                    )
                    receiver._lock.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever notices shutdown() only between polls (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/hooks"

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        """True when some configured secret verifies the signature (and timestamp)."""
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    def accepted(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0
    ) -> list[Received]:
        """Wait until ``predicate(all requests)`` holds; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    summary = [(r.type, r.webhook_id, r.status) for r in self.requests]
                    pytest.fail(f"webhook receiver: condition not met in {timeout}s: {summary}")
                self._lock.wait(remaining)
            return list(self.requests)

    def wait_accepted(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait until ``count`` distinct webhook ids were answered 2xx."""

        def enough(requests: list[Received]) -> bool:
            ids = {r.webhook_id for r in requests if 200 <= r.status < 300}
            return len(ids) >= count

        self.wait_for(enough, timeout)
        return self.accepted()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running receiver; set ``.secrets`` to the site's secret(s) before deliveries."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()
