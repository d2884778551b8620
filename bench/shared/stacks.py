"""Whole servers for side-by-side runs: ours (gateway + API) and Orthanc with DICOMweb.

Each is started once per run on a fresh database, loaded with the same DICOM files
(DCMTK storescu, untimed) and kept up while a benchmark times its requests. Every
process runs in its own process group (``bench.shared.procs.Server``), so CPU is counted
per group and Ctrl-C stops everything.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.shared.procs import (
    ORTHANC,
    ORTHANC_PLUGINS,
    BenchError,
    Server,
    free_port,
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
    random_secret,
    recreate_database,
    worklist_cli,
)
from bench.shared.targets import OrthancTarget

SENDING_SITE = "BENCH"


class WorklistStack:
    """Ours: ``python -m dicom_gateway`` and ``python -m worklist api`` on a fresh database.

    The sending trust ``BENCH`` (``BENCHSCU`` at 127.0.0.1) and one radiologist with a
    privilege there are created with the real CLI; ``add_more`` is where a benchmark adds
    its own trusts and grants.
    """

    name = "worklist"

    def __init__(self, workdir: Path, *, database: str, redis_url: str, radiologist: str) -> None:
        self.workdir = workdir
        self.database = database
        self.redis_url = redis_url
        self.radiologist = radiologist
        self.data_dir = workdir / "data"
        self.dicom_port = free_port()
        self.api_port = free_port()
        self.password = random_secret(24)
        self.gateway: Server | None = None
        self.api: Server | None = None
        self.env = {
            "WORKLIST_DATABASE_URL": f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
            "WORKLIST_REDIS_URL": redis_url,
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
            "database": f"PostgreSQL {self.database} (fresh each run)",
            "redis": self.redis_url,
            "sites": [
                f"worklist site add {SENDING_SITE} --ae-title {CALLING_AET} --host 127.0.0.1"
            ],
            "user": (
                f"worklist user add {self.radiologist} --role radiologist --site {SENDING_SITE}"
            ),
            "auth": "Bearer token from POST /api/v1/auth/token",
        }

    def cli(self, *args: str, input_text: str | None = None) -> str:
        """Run ``worklist ARGS`` against this stack's database."""
        return run_checked(worklist_cli(*args), env=self.env, input_text=input_text)

    def add_more(self) -> None:
        """Hook: a benchmark's own trusts, nodes and grants (nothing by default)."""

    def prepare(self) -> None:
        """Fresh database and Redis db, schema, the sending trust and the radiologist."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        recreate_database(self.database)
        with contextlib.closing(redis.Redis.from_url(self.redis_url)) as client:
            client.flushdb()
        self.cli("migrate")
        self.cli(
            "site", "add", SENDING_SITE, "--name", "Bench Trust", "--ae-title", CALLING_AET,
            "--host", "127.0.0.1",
        )  # fmt: skip
        self.add_more()
        self.cli(
            "user", "add", self.radiologist, "--role", "radiologist", "--site", SENDING_SITE,
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

    def token(self) -> str:
        """Log the radiologist in; the bearer token."""
        response = httpx.post(
            f"http://127.0.0.1:{self.api_port}/api/v1/auth/token",
            data={"username": self.radiologist, "password": self.password},
        )
        if response.status_code != 200:
            raise BenchError(f"login failed: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token

    def stop(self) -> None:
        """Stop both servers, drop the database and the stored files."""
        for server in (self.api, self.gateway):
            if server is not None:
                server.stop()
        self.api = self.gateway = None
        shutil.rmtree(self.data_dir, ignore_errors=True)
        drop_database(self.database)


class OrthancDicomWeb(OrthancTarget):
    """Orthanc + PostgreSQL index (as bench.ingest's orthanc-pg) + the DICOMweb plugin."""

    def __init__(self, workdir: Path, *, database: str, label: str) -> None:
        super().__init__(workdir, postgres=True)
        self.name = "orthanc"
        self.label = label
        self.database = database

    def config(self) -> dict[str, Any]:
        """orthanc-pg's configuration on this stack's database, plus DICOMweb."""
        config = super().config()
        config["Name"] = f"bench-{self.label}-orthanc"
        config["PostgreSQL"]["Database"] = self.database
        config["Plugins"] = [*config["Plugins"], str(ORTHANC_PLUGINS / "libOrthancDicomWeb.so")]
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
        return config

    @property
    def wado_base(self) -> str:
        """Base URL of DICOMweb."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def start(self) -> None:
        """Fresh storage and database, then Orthanc; wait for HTTP and the plugin."""
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "storage").mkdir(parents=True)
        (self.root / "index").mkdir(parents=True)
        assert self.database is not None
        recreate_database(self.database)
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

    def count_studies(self) -> int:
        """Studies Orthanc holds."""
        return int(self._get("/statistics")["CountStudies"])

    def _get_json_list(self, path: str) -> list[str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            result: list[str] = json.load(response)
            return result

    def stop(self) -> None:
        """Stop Orthanc, drop its database and storage."""
        try:
            if self.server is not None:
                self.server.stop()
                self.server = None
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self.database is not None:
                drop_database(self.database)
