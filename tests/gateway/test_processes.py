"""Several gateway processes share one port (SO_REUSEPORT) and stop together; a stop signal
stops the gateway whenever it arrives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.processes import serve
from dicom_gateway.server import Gateway
from tests.conftest import SECRET_KEY
from tests.gateway.conftest import association_outcome, send
from tests.ports import reserve_port
from worklist.config import Settings
from worklist.models import Instance
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances


def test_two_processes_share_the_port_and_index_concurrent_associations(
    settings: Settings, sites: None, db: sessionmaker[Session], tmp_path: Path
) -> None:
    port = reserve_port()
    env = {
        **os.environ,
        "WORKLIST_DATABASE_URL": str(settings.database_url),
        "WORKLIST_DATA_DIR": str(settings.data_dir),
        "WORKLIST_SECRET_KEY": SECRET_KEY,
        "WORKLIST_GATEWAY_PORT": str(port),
        "WORKLIST_GATEWAY_PROCESSES": "2",
    }
    parent = subprocess.Popen([sys.executable, "-m", "dicom_gateway"], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(parent.pid).children()
            listening = [
                p
                for p in [psutil.Process(parent.pid), *children]
                if any(c.laddr.port == port and c.status == "LISTEN" for c in p.net_connections())
            ]
            if len(listening) == 2:
                break
            time.sleep(0.1)
        assert len(listening) == 2, "both processes listen on the shared port"
        assert association_outcome(port) == "established"

        studies = [
            StudySpec(patient=PatientSpec(f"MP{i}"), series=[SeriesSpec(count=5)]) for i in range(4)
        ]
        results: list[int] = []

        def push(spec: StudySpec) -> None:
            results.extend(r.status for r in send(port, iter_instances(spec)))

        threads = [threading.Thread(target=push, args=(spec,)) for spec in studies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert results == [status.SUCCESS] * 20
        with db() as session:
            assert session.scalar(select(func.count()).select_from(Instance)) == 20
        child_pids = [c.pid for c in psutil.Process(parent.pid).children()]
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(timeout=30)
    assert code == 0
    assert not [pid for pid in child_pids if psutil.pid_exists(pid)]


def test_a_stop_signal_during_start_up_stops_the_gateway_once_it_is_up(
    settings: Settings, sites: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Gateway] = []
    start = Gateway.start

    def signalled_while_starting(gateway: Gateway) -> None:
        started.append(gateway)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the port is bound
        start(gateway)

    monkeypatch.setattr(Gateway, "start", signalled_while_starting)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = serve(settings)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    assert code == 0
    [gateway] = started
    # Stopped after all, not left serving behind a returned serve().
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gateway.port), timeout=5).close()
    assert not [t.name for t in threading.enumerate() if t.name == "gateway-acceptor"]
