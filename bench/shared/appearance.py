"""Appearance latency: last acknowledged instance -> study listed as ``receiving``.

Used by ``bench.ingest`` and, alone, by ``bench.latency``.

With the gateway and the API running (fresh database), each round pushes a fresh
20-instance study with an in-process pynetdicom SCU, takes the time when the last
C-STORE response arrives, then polls ``GET /api/v1/worklist?status=receiving`` every
5 ms until the study is listed with all its instances.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE

from bench.dataset import decorate
from bench.shared.procs import BenchError, Server, free_port, run_checked, wait_until
from bench.shared.services import CALLING_AET, worklist_cli
from bench.shared.targets import GatewayTarget
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance, new_uid

ADMIN_USER = "bench-admin"
POLL_INTERVAL = 0.005
APPEAR_TIMEOUT = 15.0


@dataclass
class LatencyResult:
    """Delays (seconds) from the last C-STORE response to the study being listed."""

    instances_per_study: int
    delays: list[float] = field(default_factory=list)
    poll_request_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median delay."""
        return statistics.median(self.delays)

    @property
    def maximum(self) -> float:
        """Worst delay."""
        return max(self.delays)

    @property
    def median_poll(self) -> float:
        """Median duration of one worklist request (the resolution of the measurement)."""
        return statistics.median(self.poll_request_seconds)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "instances_per_study": self.instances_per_study,
            "rounds": len(self.delays),
            "median_seconds": self.median,
            "max_seconds": self.maximum,
            "delays_seconds": self.delays,
            "median_poll_request_seconds": self.median_poll,
        }


def fresh_study(round_number: int, count: int) -> tuple[str, list[Dataset]]:
    """A new study (random UIDs) of ``count`` MR 256x256 instances, built in memory."""
    study = StudySpec(
        patient=PatientSpec(
            local_id=f"BTLAT{round_number:04d}", name=f"LATENCY^ROUND{round_number}", sex="M"
        ),
        accession_number=f"BTLAT{round_number:06d}",
        description="MRI Knee (latency probe)",
        series=[SeriesSpec("MR", count, 256, 256, "Sag PD FS", new_uid())],
        study_uid=new_uid(),
    )
    series = study.series[0]
    datasets: list[Dataset] = []
    for index in range(count):
        ds = make_instance(study, series, index, 1)
        decorate(ds, study, series, index)
        datasets.append(ds)
    return study.study_uid, datasets


class LatencyProbe:
    """Runs the gateway and the API against one fresh database and measures appearance."""

    def __init__(self, workdir: Path, *, rounds: int = 10, instances: int = 20) -> None:
        self.workdir = workdir
        self.rounds = rounds
        self.instances = instances
        self.gateway = GatewayTarget(workdir / "latency")
        self.api: Server | None = None
        self.api_port = 0

    def run(self) -> LatencyResult:
        """Start everything, measure ``rounds`` studies, stop everything."""
        try:
            self.gateway.start()
            self._start_api()
            with httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10) as http:
                token = self._token(http)
                http.headers["Authorization"] = f"Bearer {token}"
                result = LatencyResult(self.instances)
                for number in range(1, self.rounds + 1):
                    delay = self._round(http, number, result)
                    result.delays.append(delay)
                    print(f"  latency round {number}: {delay * 1000:.0f} ms", flush=True)
                return result
        finally:
            if self.api is not None:
                self.api.stop()
                self.api = None
            self.gateway.stop()

    def _start_api(self) -> None:
        env = self.gateway.env()
        self.api_port = free_port()
        env["WORKLIST_API_PORT"] = str(self.api_port)
        password = new_uid()[-24:]
        run_checked(
            worklist_cli("user", "add", ADMIN_USER, "--role", "admin", "--password-stdin"),
            env=env,
            input_text=password + "\n",
        )
        self._password = password
        self.api = Server(
            "api",
            worklist_cli("api"),
            log_path=self.gateway.workdir / "api.log",
            env=env,
            cwd=self.gateway.workdir,
        )
        wait_until(
            lambda: (
                httpx.get(f"http://127.0.0.1:{self.api_port}/healthz", timeout=2).status_code == 200
            ),
            timeout=60,
            what="the API's /healthz",
            server=self.api,
        )

    def _token(self, http: httpx.Client) -> str:
        response = http.post(
            "/api/v1/auth/token", data={"username": ADMIN_USER, "password": self._password}
        )
        if response.status_code != 200:
            raise BenchError(f"token request failed: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token

    def _round(self, http: httpx.Client, number: int, result: LatencyResult) -> float:
        study_uid, datasets = fresh_study(number, self.instances)
        ae = AE(ae_title=CALLING_AET)
        ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", self.gateway.port, ae_title=self.gateway.called_aet)
        if not assoc.is_established:
            raise BenchError("latency probe: the gateway refused the association")
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                if not status or int(status.Status) != 0:
                    raise BenchError(f"latency probe: C-STORE failed: {status}")
            acknowledged = time.perf_counter()
            delay = self._poll(http, study_uid, acknowledged, result)
        finally:
            assoc.release()
        return delay

    def _poll(
        self, http: httpx.Client, study_uid: str, acknowledged: float, result: LatencyResult
    ) -> float:
        params = {"status": "receiving", "limit": "200"}
        while True:
            sent = time.perf_counter()
            response = http.get("/api/v1/worklist", params=params)
            now = time.perf_counter()
            result.poll_request_seconds.append(now - sent)
            if response.status_code != 200:
                raise BenchError(f"worklist query failed: {response.status_code} {response.text}")
            for item in response.json()["items"]:
                if item["study_uid"] == study_uid and item["instance_count"] == self.instances:
                    return now - acknowledged
            if now - acknowledged > APPEAR_TIMEOUT:
                raise BenchError(f"study {study_uid} not listed {APPEAR_TIMEOUT:.0f}s after ack")
            time.sleep(POLL_INTERVAL)
