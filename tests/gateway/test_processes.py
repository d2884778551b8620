"""Several gateway processes share one port (SO_REUSEPORT) and stop together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from tests.conftest import SECRET_KEY
from tests.gateway.conftest import association_outcome, send
from tests.gateway.test_durability import _free_port
from worklist.config import Settings
from worklist.models import Instance
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances


def test_two_processes_share_the_port_and_index_concurrent_associations(
    settings: Settings, sites: None, db: sessionmaker[Session], tmp_path: Path
) -> None:
    port = _free_port()
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
