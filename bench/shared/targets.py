"""The receivers under test. Each run starts a fresh receiver with empty storage.

A target is started before a run (``start``), receives one warm-up instance and then the
measured set, is checked (``verify``: every instance must be there) and is stopped and
wiped (``stop``). Start-up, warm-up and verification are not timed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.dataset import DataSet
from bench.shared.procs import (
    DCMTK_STORESCP,
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
from bench.shared.services import (
    CALLING_AET,
    GATEWAY_AET,
    PG_HOST,
    PG_PORT,
    PG_USER,
    REPO_ROOT,
    START_TIMEOUT,
    dicom_echo,
    drop_database,
    pg_admin_conninfo,
    random_secret,
    recreate_database,
    worklist_cli,
)

REDIS_URL = "redis://127.0.0.1:6379/15"
GATEWAY_DB = "bench_gateway"
ORTHANC_DB = "bench_orthanc"


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far: the receiver's process group, and each database backend."""

    receiver: float
    backends: dict[int, float]

    def since(self, earlier: CpuSnapshot) -> tuple[float, float]:
        """(receiver, database) CPU seconds used between ``earlier`` and this snapshot."""
        database = sum(cpu - earlier.backends.get(pid, 0.0) for pid, cpu in self.backends.items())
        return self.receiver - earlier.receiver, database


class Target(ABC):
    """A DICOM receiver the benchmark pushes to."""

    name: str = ""
    called_aet: str = ""
    database: str | None = None  # PostgreSQL database whose backends work for the target

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.server: Server | None = None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """How the receiver is configured (recorded in the JSON output)."""

    @abstractmethod
    def start(self) -> None:
        """Start a fresh receiver with empty storage and wait until it answers C-ECHO."""

    @abstractmethod
    def stored_sop_uids(self) -> set[str] | int:
        """What the receiver holds: the SOP Instance UIDs, or only a count."""

    def verify(self, data: DataSet) -> None:
        """Fail loudly unless the receiver holds the whole set (plus the warm-up instance)."""
        expected = {*data.sop_uids, data.warmup_sop_uid}
        stored = self.stored_sop_uids()
        if isinstance(stored, int):
            if stored != len(expected):
                raise BenchError(f"{self.name}: holds {stored} instances, expected {len(expected)}")
            return
        missing = expected - stored
        extra = stored - expected
        if missing or extra:
            raise BenchError(
                f"{self.name}: {len(missing)} instances missing, {len(extra)} unexpected "
                f"(holds {len(stored)}, expected {len(expected)})"
            )

    def cpu_snapshot(self) -> CpuSnapshot:
        """CPU used so far by the receiver's processes and by its PostgreSQL backends."""
        receiver = group_cpu_seconds(self.server.pid) if self.server is not None else 0.0
        backends: dict[int, float] = {}
        if self.database is not None:
            with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchall()
            backends = pids_cpu_seconds([int(row[0]) for row in rows])
        return CpuSnapshot(receiver, backends)

    def stop(self) -> None:
        """Stop the receiver and delete what it stored."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _start_server(self, argv: list[str], env: dict[str, str] | None = None) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = Server(
            self.name, argv, log_path=self.workdir / f"{self.name}.log", env=env, cwd=REPO_ROOT
        )
        wait_until(
            lambda: dicom_echo(self.port, self.called_aet),
            timeout=START_TIMEOUT,
            what=f"{self.name} to answer C-ECHO on port {self.port}",
            server=self.server,
        )
        return self.server


def _files_in(directory: Path) -> Iterator[Path]:
    return (p for p in directory.rglob("*") if p.is_file())


class DcmtkTarget(Target):
    """DCMTK storescp: ``--fork`` (a child per association), bit-preserving, no fsync."""

    name = "dcmtk"
    called_aet = "STORESCP"

    def __init__(self, workdir: Path, *, max_pdu: int = 131072) -> None:
        super().__init__(workdir)
        self.max_pdu = max_pdu
        self.out = workdir / "storescp-out"

    def describe(self) -> dict[str, Any]:
        return {
            "program": DCMTK_STORESCP,
            "argv": [a if a != str(self.out) else "<tmp>/storescp-out" for a in self._argv(0)],
            "fork": True,
            "max_pdu": self.max_pdu,
            "fsync": False,
            "bit_preserving": True,
        }

    def _argv(self, port: int) -> list[str]:
        return [
            DCMTK_STORESCP,
            "--fork",  # one child per association: concurrent associations
            "-aet",
            self.called_aet,
            "-pdu",
            str(self.max_pdu),
            "+B",  # bit-preserving: write the dataset exactly as received
            "-dhl",  # no reverse DNS lookup per association
            "-od",
            str(self.out),
            str(port),
        ]

    def start(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        self.port = free_port()
        self._start_server(self._argv(self.port))
        # C-ECHO also ran in a forked child; nothing stored yet.

    def stored_sop_uids(self) -> set[str]:
        # storescp names files "<modality prefix>.<SOP Instance UID>".
        return {p.name.split(".", 1)[1] for p in _files_in(self.out)}

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            shutil.rmtree(self.out, ignore_errors=True)


class FloorTarget(Target):
    """bench/floor_scp.py: bare pynetdicom, one file per instance, no fsync, no database."""

    name = "pynetdicom-floor"
    called_aet = "FLOOR"

    def __init__(
        self, workdir: Path, *, max_pdu: int = 0, chunked: bool = False, pdu_stats: bool = False
    ) -> None:
        super().__init__(workdir)
        self.max_pdu = max_pdu
        self.chunked = chunked
        self.pdu_stats = pdu_stats
        self.out = workdir / "floor-out"

    def describe(self) -> dict[str, Any]:
        return {
            "program": "python -m bench.floor_scp",
            "max_pdu": self.max_pdu,
            "store_recv_chunked_dataset": self.chunked,
            "fsync": False,
            "writes": "event.encoded_dataset() to <SOP UID>.dcm",
        }

    def start(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "bench.floor_scp",
            "--port",
            str(self.port),
            "--ae-title",
            self.called_aet,
            "--output-dir",
            str(self.out),
            "--max-pdu",
            str(self.max_pdu),
        ]
        if self.chunked:
            argv.append("--chunked")
        if self.pdu_stats:
            argv.append("--pdu-stats")
        self._start_server(argv)

    def stored_sop_uids(self) -> set[str]:
        return {p.stem for p in _files_in(self.out)}

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            shutil.rmtree(self.out, ignore_errors=True)


class OrthancTarget(Target):
    """Orthanc (Debian 1.10.1) with the PostgreSQL index plugin, or SQLite."""

    called_aet = "ORTHANC"

    def __init__(
        self, workdir: Path, *, postgres: bool, index_connections: int = 1, max_pdu: int = 16384
    ) -> None:
        super().__init__(workdir)
        self.postgres = postgres
        self.index_connections = index_connections
        self.max_pdu = max_pdu
        self.name = "orthanc-pg" if postgres else "orthanc-sqlite"
        self.database = ORTHANC_DB if postgres else None
        self.http_port = 0
        self.root = workdir / self.name

    def config(self) -> dict[str, Any]:
        """Orthanc's JSON configuration (defaults kept except what a benchmark needs)."""
        config: dict[str, Any] = {
            "Name": f"bench-{self.name}",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "DicomAet": self.called_aet,
            "DicomPort": self.port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomCheckModalityHost": False,
            "SaveJobs": False,
            # Defaults of Orthanc 1.10.1, spelled out because they shape the result:
            "SyncStorageArea": True,  # fsync every stored file
            "StorageCompression": False,
            "MaximumPduLength": self.max_pdu,
            "DicomThreadsCount": 4,
            "OverwriteInstances": False,
            "Plugins": [],
        }
        if self.postgres:
            config["Plugins"] = [str(ORTHANC_PLUGINS / "libOrthancPostgreSQLIndex.so")]
            config["PostgreSQL"] = {
                "EnableIndex": True,
                "EnableStorage": False,
                "Host": PG_HOST,
                "Port": PG_PORT,
                "Database": ORTHANC_DB,
                "Username": PG_USER,
                "Password": "",
                "Lock": False,
                "IndexConnectionsCount": self.index_connections,
            }
        return config

    def describe(self) -> dict[str, Any]:
        config = self.config()
        hidden = {"StorageDirectory", "IndexDirectory", "DicomPort", "HttpPort"}
        return {k: v for k, v in config.items() if k not in hidden}

    def start(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "storage").mkdir(parents=True)
        (self.root / "index").mkdir(parents=True)
        if self.postgres:
            recreate_database(ORTHANC_DB)
        self.port = free_port()
        self.http_port = free_port()
        config_path = self.root / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        server = self._start_server([ORTHANC, str(config_path)])
        wait_until(
            lambda: "Version" in self._get("/system"),
            timeout=START_TIMEOUT,
            what=f"{self.name} HTTP /system",
            server=server,
        )

    def _get(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def stored_sop_uids(self) -> int:
        return int(self._get("/statistics")["CountInstances"])

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.postgres:
                drop_database(ORTHANC_DB)


class GatewayTarget(Target):
    """Our gateway: ``python -m dicom_gateway`` with a fresh PostgreSQL database per run."""

    name = "gateway"
    called_aet = GATEWAY_AET
    database = GATEWAY_DB

    def __init__(self, workdir: Path, *, max_pdu: int | None = None, processes: int = 1) -> None:
        super().__init__(workdir)
        self.max_pdu = max_pdu
        self.processes = processes
        if processes > 1:
            self.name = f"gateway-{processes}p"
        self.data_dir = workdir / "gateway-data"
        self.secret = random_secret()
        self.database_url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{GATEWAY_DB}"

    def env(self) -> dict[str, str]:
        """The gateway's (and the CLI's and API's) environment."""
        env = {
            "WORKLIST_DATABASE_URL": self.database_url,
            "WORKLIST_REDIS_URL": REDIS_URL,
            "WORKLIST_DATA_DIR": str(self.data_dir),
            "WORKLIST_SECRET_KEY": self.secret,
            "WORKLIST_GATEWAY_PORT": str(self.port),
            "WORKLIST_GATEWAY_AE_TITLE": GATEWAY_AET,
            "WORKLIST_LOG_LEVEL": "WARNING",
            "WORKLIST_GATEWAY_PROCESSES": str(self.processes),
        }
        if self.max_pdu is not None:
            env["WORKLIST_GATEWAY_MAX_PDU"] = str(self.max_pdu)
        return env

    def describe(self) -> dict[str, Any]:
        return {
            "program": "python -m dicom_gateway",
            "max_pdu": "WORKLIST_GATEWAY_MAX_PDU unset (gateway default, 0 = unlimited)"
            if self.max_pdu is None
            else self.max_pdu,
            "processes": f"{self.processes} (WORKLIST_GATEWAY_PROCESSES, SO_REUSEPORT)",
            "fsync": "file + directory before success (per DESIGN)",
            "index": f"PostgreSQL database {GATEWAY_DB}, group commit",
            "sender_registered": f"worklist site add BENCH --ae-title {CALLING_AET} "
            "--host 127.0.0.1",
        }

    def prepare(self) -> None:
        """Fresh database, schema, the sending site, empty storage and Redis db."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        recreate_database(GATEWAY_DB)
        with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
            client.flushdb()
        env = self.env()
        run_checked(worklist_cli("migrate"), env=env)
        run_checked(
            worklist_cli(
                "site",
                "add",
                "BENCH",
                "--name",
                "Bench Trust",
                "--ae-title",
                CALLING_AET,
                "--host",
                "127.0.0.1",
            ),
            env=env,
        )

    def start(self) -> None:
        self.port = free_port()
        self.prepare()
        self._start_server([sys.executable, "-m", "dicom_gateway"], env=self.env())

    def stored_sop_uids(self) -> set[str]:
        dicom_root = self.data_dir / "dicom"
        uids: set[str] = set()
        with psycopg.connect(pg_admin_conninfo(GATEWAY_DB)) as conn:
            rows = conn.execute("SELECT sop_instance_uid, path, size_bytes FROM instances")
            for sop_uid, path, size in rows:
                file = dicom_root / path
                if not file.is_file() or file.stat().st_size != size:
                    raise BenchError(f"gateway: indexed file {file} is missing or has wrong size")
                uids.add(sop_uid)
        return uids

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            drop_database(GATEWAY_DB)


ALL_TARGETS = (
    "gateway",
    "gateway-2p",
    "pynetdicom-floor",
    "dcmtk",
    "orthanc-pg",
    "orthanc-sqlite",
)


def make_target(name: str, workdir: Path, options: dict[str, Any]) -> Target:
    """Build the target called ``name``."""
    if name == "dcmtk":
        return DcmtkTarget(workdir, max_pdu=int(options.get("dcmtk_pdu", 131072)))
    if name == "pynetdicom-floor":
        return FloorTarget(
            workdir,
            max_pdu=int(options.get("floor_pdu", 0)),
            chunked=bool(options.get("floor_chunked", False)),
        )
    if name == "orthanc-pg":
        return OrthancTarget(
            workdir,
            postgres=True,
            index_connections=int(options.get("orthanc_pg_conns", 1)),
            max_pdu=int(options.get("orthanc_pdu", 16384)),
        )
    if name == "orthanc-sqlite":
        return OrthancTarget(
            workdir, postgres=False, max_pdu=int(options.get("orthanc_pdu", 16384))
        )
    if name in ("gateway", "gateway-2p"):
        pdu = options.get("gateway_pdu")
        return GatewayTarget(
            workdir,
            max_pdu=None if pdu is None else int(pdu),
            processes=2 if name == "gateway-2p" else 1,
        )
    raise ValueError(f"unknown target {name!r}; choose from {', '.join(ALL_TARGETS)}")


__all__ = [
    "ALL_TARGETS",
    "DcmtkTarget",
    "FloorTarget",
    "GatewayTarget",
    "OrthancTarget",
    "Target",
    "make_target",
]
