"""Figures every benchmark reports the same way: percentiles, the machine's CPU, the host."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max (ms) of ``values``, None when empty."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    arr = np.asarray(values)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


def fmt_ms(value: float | None) -> str:
    """A latency for the table."""
    return "-" if value is None else f"{value:.1f}"


def cpu_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_busy_fraction(seconds: float = 3.0) -> float:
    """Share of all CPUs busy over ``seconds`` (0..1)."""
    before = cpu_busy_seconds()
    time.sleep(seconds)
    return (cpu_busy_seconds() - before) / seconds / (os.cpu_count() or 1)


def wait_for_quiet(minutes: float, threshold: float = 0.25) -> float:
    """Wait (up to ``minutes``) until other work leaves the CPUs mostly idle; last busy share.

    On a shared machine other processes (test suites) steal the CPUs the API and the
    database need, which shows up as latency that is not ours.
    """
    deadline = time.monotonic() + minutes * 60
    busy = machine_busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        print(f"  machine {busy:.0%} busy with other work; waiting for it to calm down ...")
        time.sleep(20)
        busy = machine_busy_fraction()
    return busy


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when it is under it."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def host_info() -> dict[str, Any]:
    """Where the numbers came from."""
    import pydicom
    import pynetdicom

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "pynetdicom": pynetdicom.__version__,
    }
