"""`worklist hl7` as an operator runs it: a process that listens, acknowledges after the
commit, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.hl7 import messages as m
from tests.hl7.conftest import stored
from tests.hl7.mllp_client import exchange, msa
from tests.ports import reserve_port
from worklist.config import Settings

START_TIMEOUT = 60.0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_worklist_hl7_serves_until_sigterm(
    settings: Settings, hl7_site: int, db: sessionmaker[Session], tmp_path: Path
) -> None:
    port = reserve_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLIST_")}
    env.update(
        WORKLIST_DATABASE_URL=settings.require_database_url(),
        WORKLIST_REDIS_URL=settings.redis_url or "",
        WORKLIST_DATA_DIR=str(tmp_path / "var"),
        WORKLIST_HL7_PORT=str(port),
        WORKLIST_LOG_LEVEL="DEBUG",
    )
    log = tmp_path / "hl7.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "worklist", "hl7"], env=env, stderr=err, stdout=err
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worklist hl7 did not listen"
            time.sleep(0.1)

        (ack,) = exchange(port, m.orm())

        assert msa(ack) == ("AA", "MSG00001")
        assert stored(db).orders == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "hl7 listener ready" in output
    assert m.NHS_NUMBER not in output
    assert "SMITH" not in output


def test_worklist_hl7_on_a_port_in_use_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKLIST_")}
        env.update(
            WORKLIST_DATABASE_URL=settings.require_database_url(),
            WORKLIST_DATA_DIR=str(tmp_path / "var"),
            WORKLIST_HL7_PORT=str(busy.getsockname()[1]),
        )
        result = subprocess.run(
            [sys.executable, "-m", "worklist", "hl7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in result.stderr
