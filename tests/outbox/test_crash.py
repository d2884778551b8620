"""A `worklist worker` killed with SIGKILL mid-delivery loses nothing: a new one sends the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import SECRET_KEY
from tests.outbox.conftest import (
    accepted_counts,
    add_webhook_site,
    all_delivered,
    enqueue_messages,
    wait_until,
    webhook_deliveries,
)
from tests.receiver import Received, Reply, WebhookReceiver
from worklist.config import Settings


class Workers:
    """Starts `worklist worker` processes configured for the test; kills what is left after."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = {
            **os.environ,
            "WORKLIST_DATABASE_URL": str(settings.database_url),
            "WORKLIST_REDIS_URL": str(settings.redis_url),
            "WORKLIST_SECRET_KEY": SECRET_KEY,
            "WORKLIST_DATA_DIR": str(settings.data_dir),
            # A 1 s timeout makes the lease 7 s: a dead worker's claims free up quickly.
            "WORKLIST_WEBHOOK_TIMEOUT_SECONDS": "1",
            "WORKLIST_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
            "WORKLIST_WEBHOOK_RETRY_MAX_SECONDS": "0.5",
            "WORKLIST_WEBHOOK_CONCURRENCY": "8",
            "WORKLIST_WORKER_INTERVAL_SECONDS": "0.2",
            "WORKLIST_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver listens on loopback
        }
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        """One more worker process (its log in ``log_dir``)."""
        log = (self.log_dir / f"worker{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "worklist", "worker"], env=self.env, stderr=log, stdout=log
        )
        log.close()
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        """SIGKILL every worker still running."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def worker_sessions(db: sessionmaker[Session]) -> list[int]:
    """Backend pids of the worker processes' database sessions."""
    with db() as session:
        return list(
            session.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name IN ('worklist-worker', 'worklist-dispatcher')"
                )
            )
        )


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes for this test."""
    started = Workers(settings, tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def test_kill_9_mid_delivery_then_restart_delivers_every_message(
    db: sessionmaker[Session], workers: Workers, webhook_receiver: WebhookReceiver
) -> None:
    sites = [add_webhook_site(db, f"{webhook_receiver.url}?trust={n}") for n in range(3)]
    webhook_receiver.secrets = [s.webhook_secret for s in sites if s.webhook_secret]
    arrived: Counter[str] = Counter()
    lock = threading.Lock()

    def slow(request: Received) -> Reply:
        with lock:
            arrived[request.webhook_id] += 1
        return Reply(204, delay=0.4)

    webhook_receiver.behaviour = slow
    ids = [w for site in sites for w in enqueue_messages(db, site, 20)]

    first = workers.start()
    wait_until(lambda: sum(arrived.values()) >= 10, timeout=30, what="deliveries under way")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    # A COMMIT the worker sent just before dying still lands: read once its sessions are gone.
    wait_until(lambda: not worker_sessions(db), timeout=30, what="the dead worker's sessions end")

    # What the dead worker had sent (or was sending) but never recorded.
    rows = webhook_deliveries(db)
    with lock:
        unrecorded = {w for w in arrived if rows[w].status != "delivered"}
    assert unrecorded, "the worker was not killed in the middle of a delivery"

    second = workers.start()
    wait_until(all_delivered(db, ids), timeout=60, what="every message delivered after restart")
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0

    counts = accepted_counts(webhook_receiver)
    assert set(counts) == set(ids)
    # At-least-once: what was in flight went out again, under the same webhook-id.
    assert all(arrived[w] >= 2 for w in unrecorded)
    assert all(r.verified for r in webhook_receiver.requests)
