"""The retrieval benchmark's servers: ours (gateway + API), Orthanc, and the C-MOVE receiver.

Ours and Orthanc are ``bench.shared.stacks``' with what a retrieval needs on top: the
reading trust's workstation (the C-MOVE destination) known to both.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from bench.retrieve_data import Study
from bench.shared.procs import (
    DCMTK_STORESCP,
    BenchError,
    Server,
    free_port,
    group_cpu_seconds,
    wait_until,
)
from bench.shared.services import START_TIMEOUT, dicom_echo, pg_admin_conninfo
from bench.shared.stacks import SENDING_SITE, OrthancDicomWeb
from bench.shared.stacks import WorklistStack as SharedWorklistStack

DATABASE = "bench_retrieve"
ORTHANC_DATABASE = "bench_retrieve_orthanc"
# Redis db of this benchmark (ingest 15, worklist 14, alerts 13); flushed at start.
REDIS_URL = "redis://127.0.0.1:6379/12"
READING_SITE = "BENCHREAD"
WORKSTATION_AET = "BENCHWS"
RADIOLOGIST = "bench-retrieve-rad"
RECEIVER_PDU = 131072


class Receiver:
    """DCMTK storescp as the reading workstation: the C-MOVE destination of both targets."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # RAM-backed when possible: the receiver's disk must not be what is measured.
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else workdir
        self.out = base / f"bench-retrieve-storescp-{os.getpid()}"
        self.port = free_port()
        self.server: Server | None = None

    def argv(self) -> list[str]:
        """storescp: bit-preserving writes, no reverse DNS, 128 KiB PDUs announced."""
        return [
            DCMTK_STORESCP,
            "-aet",
            WORKSTATION_AET,
            "-pdu",
            str(RECEIVER_PDU),
            "+B",
            "-dhl",
            "-od",
            str(self.out),
            str(self.port),
        ]

    def describe(self) -> dict[str, Any]:
        """How the receiver runs (for the JSON)."""
        argv = self.argv()
        return {
            "program": DCMTK_STORESCP,
            "argv": [a if a != str(self.out) else "<dir>" for a in argv[1:-1]] + ["<port>"],
            "output_dir": "/dev/shm" if str(self.out).startswith("/dev/shm") else "temp dir",
            "env": {"TCP_NODELAY": "1"},
        }

    def start(self) -> None:
        """Start storescp and wait until it answers C-ECHO."""
        self.clear()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = Server(
            "storescp", self.argv(), log_path=self.workdir / "storescp.log", cwd=self.workdir
        )
        wait_until(
            lambda: dicom_echo(self.port, WORKSTATION_AET),
            timeout=START_TIMEOUT,
            what="storescp to answer C-ECHO",
            server=self.server,
        )

    def files(self) -> list[Path]:
        """What it has received since the last ``clear``."""
        return [p for p in self.out.iterdir() if p.is_file()] if self.out.is_dir() else []

    def clear(self) -> None:
        """Delete what it received."""
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)

    def cpu(self) -> float:
        """CPU seconds of storescp so far."""
        return group_cpu_seconds(self.server.pid) if self.server is not None else 0.0

    def stop(self) -> None:
        """Stop storescp and remove its files."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        shutil.rmtree(self.out, ignore_errors=True)


class WorklistStack(SharedWorklistStack):
    """Ours, with the reading trust's workstation as a C-MOVE destination of BENCH's studies."""

    def __init__(self, workdir: Path, receiver: Receiver) -> None:
        super().__init__(workdir, database=DATABASE, redis_url=REDIS_URL, radiologist=RADIOLOGIST)
        self.receiver = receiver

    def describe(self) -> dict[str, Any]:
        """Configuration (for the JSON)."""
        described = super().describe()
        described["sites"] = [
            *described["sites"],
            f"worklist site add {READING_SITE} --ae-title {WORKSTATION_AET} "
            "--host 127.0.0.1 --port <storescp port>",
            f"worklist node grant {WORKSTATION_AET} --site {SENDING_SITE}",
        ]
        return described

    def add_more(self) -> None:
        """The reading trust (its workstation is the storescp receiver) and its grant."""
        self.cli(
            "site", "add", READING_SITE, "--name", "Bench Reading Trust",
            "--ae-title", WORKSTATION_AET, "--host", "127.0.0.1",
            "--port", str(self.receiver.port),
        )  # fmt: skip
        self.cli("node", "grant", WORKSTATION_AET, "--site", SENDING_SITE)

    def verify(self, study: Study) -> int:
        """Fail unless every instance is indexed and its file is there; the stored bytes.

        The gateway stores each instance as received with its own File Meta header, so a
        file differs from the sender's by a few bytes.
        """
        dicom_root = self.data_dir / "dicom"
        with psycopg.connect(pg_admin_conninfo(DATABASE)) as conn:
            rows = conn.execute(
                "SELECT i.sop_instance_uid, i.path, i.size_bytes FROM instances i "
                "JOIN studies s ON s.id = i.study_id WHERE s.study_uid = %s",
                (study.study_uid,),
            ).fetchall()
        if {str(row[0]) for row in rows} != set(study.sop_uids):
            raise BenchError(f"worklist: holds {len(rows)} instances, expected {study.count}")
        for _, path, size in rows:
            file = dicom_root / path
            if not file.is_file() or file.stat().st_size != size:
                raise BenchError(f"worklist: stored file {file} missing or of the wrong size")
        return sum(int(row[2]) for row in rows)

    def wado_pid(self) -> int:
        """Process group of the server answering WADO-RS."""
        assert self.api is not None
        return self.api.pid

    def move_pid(self) -> int:
        """Process group of the server answering C-MOVE."""
        assert self.gateway is not None
        return self.gateway.pid


class OrthancStack(OrthancDicomWeb):
    """Orthanc + PostgreSQL index + DICOMweb, with the workstation as a modality."""

    def __init__(self, workdir: Path, receiver: Receiver) -> None:
        super().__init__(workdir, database=ORTHANC_DATABASE, label="retrieve")
        self.receiver = receiver

    def config(self) -> dict[str, Any]:
        """The shared Orthanc configuration plus the workstation as a modality."""
        config = super().config()
        config["DicomModalities"] = {
            WORKSTATION_AET: {
                "AET": WORKSTATION_AET,
                "Host": "127.0.0.1",
                "Port": self.receiver.port,
            }
        }
        return config

    def verify(self, study: Study) -> int:  # type: ignore[override]
        """Fail unless Orthanc holds exactly the study's instances; the stored bytes."""
        stored = self.stored_sop_uids()
        if stored != study.count:
            raise BenchError(f"orthanc: holds {stored} instances, expected {study.count}")
        statistics = self._get(f"/studies/{self._study_id(study)}/statistics")
        return int(statistics["DiskSize"])

    def _study_id(self, study: Study) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/tools/lookup",
            data=study.study_uid.encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            matches: list[dict[str, str]] = json.load(response)
        ids = [m["ID"] for m in matches if m.get("Type") == "Study"]
        if len(ids) != 1:
            raise BenchError(f"orthanc: study {study.study_uid} not found ({matches})")
        return ids[0]

    def token(self) -> str | None:
        """Orthanc runs without authentication (benchmark configuration)."""
        return None

    def wado_pid(self) -> int:
        """Orthanc answers both."""
        assert self.server is not None
        return self.server.pid

    def move_pid(self) -> int:
        """Orthanc answers both."""
        return self.wado_pid()
