"""Redis stopped while alerts are raised: they are stored with their deliveries, the alert
stream still gets them (it polls PostgreSQL), and everything is delivered once Redis is back.

The test runs its own redis-server on a free port; the shared one is never touched.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    Network,
    deliveries,
    messages,
    running_dispatcher,
    serve_api,
    wait_until,
)
from tests.ports import reserve_port
from tests.receiver import WebhookReceiver
from worklist.config import Settings
from worklist.enums import DeliveryChannel, DeliveryStatus
from worklist.outbox import WAKE_CHANNEL


class OwnRedis:
    """A redis-server of this test's own, which it may stop and restart on the same port."""

    def __init__(self, workdir: Path) -> None:
        # Reserved: nobody else takes the port while the server is down.
        self.port = reserve_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wake_listeners(self) -> int:
        """How many connections are subscribed to the outbox wake-up channel."""
        client = redis.Redis.from_url(self.url)
        try:
            [(_, count)] = client.pubsub_numsub(WAKE_CHANNEL)
            return int(count)
        finally:
            client.close()

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE`` and wait for the process to exit."""
        client = redis.Redis.from_url(self.url)
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        finally:
            client.close()
        if self._process is not None:
            self._process.wait(timeout=10)

    def kill(self) -> None:
        """Stop the server if it still runs (cleanup)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running redis-server of this test's own."""
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_alerts_raised_while_redis_is_down_are_stored_streamed_and_delivered(
    network: Network,
    db: sessionmaker[Session],
    settings: Settings,
    own_redis: OwnRedis,
    webhook_receiver: WebhookReceiver,
) -> None:
    ours = settings.model_copy(update={"redis_url": own_redis.url})
    with (
        serve_api(ours) as api,
        running_dispatcher(ours),
        api.sse(network["alert_a"]) as stream,
    ):
        before = api.raise_alert(network["rad_b"], network.study_uid)["id"]
        [event] = stream.events(1)
        assert event.data is not None
        assert event.data["id"] == before
        listeners = own_redis.wake_listeners()
        assert listeners >= 1  # the stream (and the dispatcher) wait on wake-ups

        own_redis.shutdown()
        during = []
        for n in range(3):
            started = time.monotonic()
            alert = api.raise_alert(network["rad_b"], network.study_uid, finding=f"Finding {n}")
            assert time.monotonic() - started < 5.0, "a Redis outage must not stall the request"
            during.append(alert["id"])
            # Stored with its deliveries, in the same transaction as the alert.
            assert [m.type for m in messages(db, alert["id"])] == ["alert.raised"]
            channels = {d.channel for d in deliveries(db, alert["id"])}
            assert channels == {DeliveryChannel.WEBHOOK, DeliveryChannel.SSE}

        streamed = stream.events(3, timeout=10.0)  # found by polling PostgreSQL
        assert [e.data["id"] for e in streamed if e.data] == during

        own_redis.start()
        wait_until(
            lambda: own_redis.wake_listeners() == listeners,
            what="the stream and the dispatcher to subscribe again",
        )
        after = api.raise_alert(network["rad_b"], network.study_uid)["id"]
        [late] = stream.events(1, timeout=10.0)
        assert late.data is not None
        assert late.data["id"] == after

        accepted = webhook_receiver.wait_accepted(5, timeout=30.0)

    everything = [before, *during, after]
    assert {r.payload["data"]["id"] for r in accepted} == set(everything)
    assert all(r.verified for r in accepted)

    def all_delivered() -> bool:
        return all(d.status is DeliveryStatus.DELIVERED for d in deliveries(db))

    wait_until(all_delivered, what="every webhook and stream delivery recorded")
    assert len(deliveries(db)) == 2 * len(everything)
