"""Memory while receiving one very large instance: the gateway streams it to disk.

    python -m bench.memory [--megabytes 512]

Generates one multi-frame instance of about ``--megabytes`` MB (once, into
``bench/.data/``), pushes it with DCMTK storescu to the gateway and to the bare
pynetdicom floor (which holds each dataset in memory), sampling the receiver's
resident memory every 10 ms. Prints the peak growth over the idle baseline as a
ratio of the instance size: near 0 means memory is bounded whatever the size.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MultiFrameGrayscaleWordSecondaryCaptureImageStorage

from bench.shared import prereqs
from bench.shared.procs import install_signal_handlers
from bench.shared.push import push
from bench.shared.targets import Target, make_target
from worklist.synthetic import new_uid

DATA = Path(__file__).parent / ".data" / "memory"


def big_instance(megabytes: int) -> Path:
    """A multi-frame 16-bit instance of about ``megabytes`` MB (cached)."""
    path = DATA / f"big-{megabytes}MB.dcm"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rows, columns = 1024, 1024
    frames = max(1, megabytes * 1_000_000 // (rows * columns * 2))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = new_uid(f"bench-memory-{megabytes}")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = new_uid(f"bench-memory-study-{megabytes}")
    ds.SeriesInstanceUID = new_uid(f"bench-memory-series-{megabytes}")
    ds.Modality = "OT"
    ds.PatientName = "MEMORY^BENCH"
    ds.PatientID = "MEM1"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (
        np.random.default_rng(7)
        .integers(0, 4096, frames * rows * columns, dtype=np.uint16)
        .tobytes()
    )
    ds.save_as(path, enforce_file_format=True)
    return path


def group_rss(pid: int) -> int:
    """Resident bytes of a process and its children."""
    # Imported here so that a machine without psutil gets prereqs' one line, not a traceback.
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def measure(target: Target, file: Path, workdir: Path) -> dict[str, float]:
    """Push ``file`` once; return baseline and peak RSS in MB."""
    target.start()
    try:
        assert target.server is not None
        pid = target.server.pid
        time.sleep(0.5)
        baseline = group_rss(pid)
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, group_rss(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            seconds = push(target, [[file]], workdir, f"memory-{target.name}")
        finally:
            done.set()
            sampler.join()
        return {"baseline_mb": baseline / 1e6, "peak_mb": peak / 1e6, "seconds": seconds}
    finally:
        target.stop()


def main() -> None:
    """Run the memory benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=512)
    args = parser.parse_args()
    prereqs.require("bench.memory", [prereqs.DCMTK, prereqs.PSUTIL])
    install_signal_handlers()
    file = big_instance(args.megabytes)
    size_mb = file.stat().st_size / 1e6
    print(f"instance: {file.name}, {size_mb:.0f} MB")
    print(f"{'target':<18}{'baseline MB':>12}{'peak MB':>10}{'growth/size':>13}{'seconds':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for name in ("gateway", "pynetdicom-floor"):
            result = measure(make_target(name, Path(tmp) / name, {}), file, Path(tmp))
            growth = (result["peak_mb"] - result["baseline_mb"]) / size_mb
            print(
                f"{name:<18}{result['baseline_mb']:>12.0f}{result['peak_mb']:>10.0f}"
                f"{growth:>13.2f}{result['seconds']:>9.2f}"
            )
    print(f"command: python -m bench.memory --megabytes {args.megabytes}")


if __name__ == "__main__":
    main()
