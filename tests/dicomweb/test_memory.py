"""Large images go through a server process whose memory stays flat (streamed, or one frame)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import CTImageStorage
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import bearer
from tests.dicomweb.conftest import DR_A
from tests.gateway.conftest import send, write_files
from tests.ports import reserve_port
from worklist.config import Settings
from worklist.models import User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance

INSTANCES = 4
ROWS, COLUMNS = 5000, 5000  # 50 MB of 16-bit pixels each: a 200 MB study
MIB = 1024 * 1024
# Far below the study's 200 MB: the body is never held whole in the server.
MAX_PEAK_GROWTH = 40 * MIB

SERVER = """
import uvicorn
from worklist.app import create_app
from worklist.config import Settings
uvicorn.run(create_app(Settings()), host="127.0.0.1", port={port}, log_level="warning")
"""


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def api_process(settings: Settings, db: sessionmaker[Session]) -> Iterator[tuple[str, int]]:
    """The API in its own process (so its peak RSS is its own), on a free port."""
    port = reserve_port()
    env = {
        **os.environ,
        "WORKLIST_DATABASE_URL": settings.require_database_url(),
        "WORKLIST_REDIS_URL": settings.require_redis_url(),
        "WORKLIST_DATA_DIR": str(settings.data_dir),
        "WORKLIST_SECRET_KEY": settings.resolved_secret_key(),
    }
    process = subprocess.Popen([sys.executable, "-c", SERVER.format(port=port)], env=env)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert process.poll() is None, "the API process exited"
            assert time.monotonic() < deadline, "the API process did not start"
            try:
                httpx.get(f"{base_url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_200_mb_study_streams_with_flat_server_memory(
    api_process: tuple[str, int],
    gateway: Gateway,
    users: dict[str, User],
    settings: Settings,
    db: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    base_url, pid = api_process
    series = SeriesSpec(modality="CT", count=INSTANCES, rows=ROWS, columns=COLUMNS)
    spec = StudySpec(patient=PatientSpec("BIG-1"), series=[series])
    datasets = []
    for index in range(INSTANCES):
        ds = make_instance(spec, series, index, 1)
        ds.PixelData = os.urandom(ROWS * COLUMNS * 2)
        assert ds.SOPClassUID == CTImageStorage
        datasets.append(ds)
    paths = write_files(datasets, tmp_path / "sent")
    del datasets
    assert all(r.status == 0 for r in send(gateway.port, paths))
    study_size = sum(path.stat().st_size for path in paths)
    assert study_size > INSTANCES * 50 * 1000 * 1000

    headers = bearer(settings, users[DR_A])
    url = f"{base_url}/dicomweb/studies/{spec.study_uid}"
    # Warm up (imports, pools, first request) before taking the baseline.
    assert httpx.get(f"{url}/metadata", headers=headers, timeout=30).status_code == 200
    before = _peak_rss(pid)
    received = 0
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received += len(chunk)
    growth = _peak_rss(pid) - before
    assert received > study_size
    assert growth < MAX_PEAK_GROWTH, f"peak RSS grew {growth / MIB:.0f} MiB"


FRAMES = 48
FRAME_SIDE = 1024  # 2 MB a frame: a 96 MB multi-frame image
# Far below the image's 96 MB: one frame is decoded, not the whole Pixel Data.
MAX_RENDER_GROWTH = 40 * MIB


def test_one_frame_of_a_large_multi_frame_image_renders_with_bounded_memory(
    api_process: tuple[str, int],
    gateway: Gateway,
    users: dict[str, User],
    settings: Settings,
    tmp_path: Path,
) -> None:
    base_url, pid = api_process
    small = SeriesSpec(modality="CT", count=1)
    large = SeriesSpec(modality="CT", count=1, rows=FRAME_SIDE, columns=FRAME_SIDE)
    spec = StudySpec(patient=PatientSpec("BIG-2"), series=[small, large])
    warm = make_instance(spec, small, 0, 1)
    ds = make_instance(spec, large, 0, 2)
    ds.NumberOfFrames = FRAMES
    ds.PixelData = os.urandom(FRAMES * FRAME_SIDE * FRAME_SIDE * 2)
    paths = write_files([warm, ds], tmp_path / "sent")
    del ds
    assert all(r.status == 0 for r in send(gateway.port, paths))

    headers = bearer(settings, users[DR_A])
    root = f"{base_url}/dicomweb/studies/{spec.study_uid}/series"
    # Warm up on the small image (imports, decoders, the thread pool) before the baseline.
    warm_url = f"{root}/{small.series_uid}/instances/{warm.SOPInstanceUID}/rendered"
    assert httpx.get(warm_url, headers=headers, timeout=30).status_code == 200
    before = _peak_rss(pid)
    sop = dcmread(paths[1], stop_before_pixels=True).SOPInstanceUID
    frame = f"{root}/{large.series_uid}/instances/{sop}/frames/{FRAMES - 1}/rendered"
    response = httpx.get(frame, headers={**headers, "Accept": "image/png"}, timeout=60)
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (FRAME_SIDE, FRAME_SIDE)
    growth = _peak_rss(pid) - before
    assert growth < MAX_RENDER_GROWTH, f"peak RSS grew {growth / MIB:.0f} MiB"
