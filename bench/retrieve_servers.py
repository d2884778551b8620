"""The retrieval benchmark's servers: ours (gateway + API), Orthanc, and the C-MOVE receiver.

Each is started once per run, loaded with the same study (DCMTK storescu, untimed) and
kept up while the retrievals are timed. Every process runs in its own process group
(``bench.procs.Server``), so CPU is counted per group and Ctrl-C stops everything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench.procs import (
    DCMTK_STORESCP,
    DCMTK_STORESCU,
    ORTHANC,
    ORTHANC_PLUGINS,
    BenchError,
    Server,
    free_port,
    group_cpu_seconds,
    pids_cpu_seconds,
    run_checked,
    wait_until,
)
from bench.retrieve_data import Study
from bench.targets import (
    CALLING_AET,
    GATEWAY_AET,
    PG_HOST,
    PG_PORT,
    PG_USER,
    REPO_ROOT,
    START_TIMEOUT,
    OrthancTarget,
    dicom_echo,
    drop_database,
    pg_admin_conninfo,
    random_secret,
    recreate_database,
    worklist_cli,
)

DATABASE = "bench_retrieve"
ORTHANC_DATABASE = "bench_retrieve_orthanc"
# Redis db of this benchmark (ingest 15, worklist 14, alerts 13); flushed at start.
REDIS_URL = "redis://127.0.0.1:6379/12"
SENDING_SITE = "BENCH"
READING_SITE = "BENCHREAD"
WORKSTATION_AET = "BENCHWS"
RADIOLOGIST = "bench-retrieve-rad"
RECEIVER_PDU = 131072
PUSH_TIMEOUT = 600.0


def database_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each live PostgreSQL backend connected to ``database``."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return pids_cpu_seconds([int(row[0]) for row in rows])


def push_study(study: Study, port: int, called_aet: str, log_path: Path) -> None:
    """Send the study with DCMTK storescu (as stored, one association); fail on any error."""
    argv = [DCMTK_STORESCU, "-aet", CALLING_AET, "-aec", called_aet, "-R", "127.0.0.1", str(port)]
    output = run_checked([*argv, *map(str, study.files)], timeout=PUSH_TIMEOUT)
    log_path.write_text(output)
    if "E: " in output:
        raise BenchError(f"storescu to {called_aet} reported errors:\n{output[-3000:]}")


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


class WorklistStack:
    """Ours: ``python -m dicom_gateway`` and ``python -m worklist api`` on a fresh database."""

    name = "worklist"

    def __init__(self, workdir: Path, receiver: Receiver) -> None:
        self.workdir = workdir
        self.receiver = receiver
        self.data_dir = workdir / "data"
        self.dicom_port = free_port()
        self.api_port = free_port()
        self.password = random_secret(24)
        self.gateway: Server | None = None
        self.api: Server | None = None
        self.env = {
            "WORKLIST_DATABASE_URL": f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{DATABASE}",
            "WORKLIST_REDIS_URL": REDIS_URL,
            "WORKLIST_DATA_DIR": str(self.data_dir),
            "WORKLIST_SECRET_KEY": random_secret(),
            "WORKLIST_GATEWAY_PORT": str(self.dicom_port),
            "WORKLIST_GATEWAY_AE_TITLE": GATEWAY_AET,
            "WORKLIST_API_PORT": str(self.api_port),
            "WORKLIST_LOG_LEVEL": "WARNING",
        }

    @property
    def called_aet(self) -> str:
        """The gateway's AE title."""
        return GATEWAY_AET

    @property
    def wado_base(self) -> str:
        """Base URL of DICOMweb."""
        return f"http://127.0.0.1:{self.api_port}/dicomweb"

    def describe(self) -> dict[str, Any]:
        """Configuration (for the JSON)."""
        return {
            "gateway": "python -m dicom_gateway (defaults: 1 process, max PDU 0 = unlimited)",
            "api": "python -m worklist api (uvicorn, 1 process)",
            "database": f"PostgreSQL {DATABASE} (fresh each run)",
            "redis": REDIS_URL,
            "sites": [
                f"worklist site add {SENDING_SITE} --ae-title {CALLING_AET} --host 127.0.0.1",
                f"worklist site add {READING_SITE} --ae-title {WORKSTATION_AET} "
                "--host 127.0.0.1 --port <storescp port>",
                f"worklist node grant {WORKSTATION_AET} --site {SENDING_SITE}",
            ],
            "user": f"worklist user add {RADIOLOGIST} --role radiologist --site {SENDING_SITE}",
            "auth": "Bearer token from POST /api/v1/auth/token",
        }

    def _cli(self, *args: str, input_text: str | None = None) -> str:
        return run_checked(worklist_cli(*args), env=self.env, input_text=input_text)

    def prepare(self) -> None:
        """Fresh database and Redis db, schema, the two sites, the grant and the user."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        recreate_database(DATABASE)
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
            client.flushdb()
        self._cli("migrate")
        self._cli(
            "site", "add", SENDING_SITE, "--name", "Bench Trust", "--ae-title", CALLING_AET,
            "--host", "127.0.0.1",
        )  # fmt: skip
        self._cli(
            "site", "add", READING_SITE, "--name", "Bench Reading Trust",
            "--ae-title", WORKSTATION_AET, "--host", "127.0.0.1",
            "--port", str(self.receiver.port),
        )  # fmt: skip
        self._cli("node", "grant", WORKSTATION_AET, "--site", SENDING_SITE)
        self._cli(
            "user", "add", RADIOLOGIST, "--role", "radiologist", "--site", SENDING_SITE,
            "--password-stdin", input_text=self.password + "\n",
        )  # fmt: skip

    def start(self) -> None:
        """Prepare, then start the gateway and the API and wait until both answer."""
        self.prepare()
        self.gateway = Server(
            "gateway",
            [sys.executable, "-m", "dicom_gateway"],
            log_path=self.workdir / "gateway.log",
            env=self.env,
            cwd=REPO_ROOT,
        )
        wait_until(
            lambda: dicom_echo(self.dicom_port, GATEWAY_AET),
            timeout=START_TIMEOUT,
            what="the gateway to answer C-ECHO",
            server=self.gateway,
        )
        self.api = Server(
            "api", worklist_cli("api"), log_path=self.workdir / "api.log", env=self.env,
            cwd=REPO_ROOT,
        )  # fmt: skip
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{self.api_port}/healthz").status_code == 200,
            timeout=START_TIMEOUT,
            what="the API's /healthz",
            server=self.api,
        )

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

    def token(self) -> str:
        """Log the radiologist in; the bearer token."""
        response = httpx.post(
            f"http://127.0.0.1:{self.api_port}/api/v1/auth/token",
            data={"username": RADIOLOGIST, "password": self.password},
        )
        if response.status_code != 200:
            raise BenchError(f"login failed: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token

    def wado_pid(self) -> int:
        """Process group of the server answering WADO-RS."""
        assert self.api is not None
        return self.api.pid

    def move_pid(self) -> int:
        """Process group of the server answering C-MOVE."""
        assert self.gateway is not None
        return self.gateway.pid

    def stop(self) -> None:
        """Stop both servers, drop the database and the stored files."""
        for server in (self.api, self.gateway):
            if server is not None:
                server.stop()
        self.api = self.gateway = None
        shutil.rmtree(self.data_dir, ignore_errors=True)
        drop_database(DATABASE)


class OrthancStack(OrthancTarget):
    """Orthanc + PostgreSQL index (as bench.ingest's orthanc-pg) + DICOMweb plugin."""

    def __init__(self, workdir: Path, receiver: Receiver) -> None:
        super().__init__(workdir, postgres=True)
        self.name = "orthanc"
        self.database = ORTHANC_DATABASE
        self.receiver = receiver

    def config(self) -> dict[str, Any]:
        """orthanc-pg's configuration plus DICOMweb and the workstation as a modality."""
        config = super().config()
        config["Name"] = "bench-retrieve-orthanc"
        config["PostgreSQL"]["Database"] = ORTHANC_DATABASE
        config["Plugins"] = [*config["Plugins"], str(ORTHANC_PLUGINS / "libOrthancDicomWeb.so")]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
        config["DicomModalities"] = {
            WORKSTATION_AET: {
                "AET": WORKSTATION_AET,
                "Host": "127.0.0.1",
                "Port": self.receiver.port,
            }
        }
        return config

    @property
    def wado_base(self) -> str:
        """Base URL of DICOMweb."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def start(self) -> None:
        """Fresh storage and database, then Orthanc; wait for C-ECHO and HTTP."""
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "storage").mkdir(parents=True)
        (self.root / "index").mkdir(parents=True)
        recreate_database(ORTHANC_DATABASE)
        self.port = free_port()
        self.http_port = free_port()
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        server = self._start_server([ORTHANC, str(config_path)])
        wait_until(
            lambda: "Version" in self._get("/system"),
            timeout=START_TIMEOUT,
            what="Orthanc HTTP /system",
            server=server,
        )
        plugins = self._get_json_list("/plugins")
        if "dicom-web" not in plugins:
            raise BenchError(f"Orthanc's DICOMweb plugin is not loaded (plugins: {plugins})")

    def _get_json_list(self, path: str) -> list[str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            result: list[str] = json.load(response)
            return result

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

    def stop(self) -> None:
        """Stop Orthanc, drop its database and storage."""
        try:
            if self.server is not None:
                self.server.stop()
                self.server = None
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            drop_database(ORTHANC_DATABASE)
