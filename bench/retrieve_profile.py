"""Where our servers spend a retrieval: py-spy samples of one extra, untimed retrieval.

py-spy (``pip install py-spy``) samples the Python stacks of a running process without
stopping it (``--nonblocking``); only samples of threads that were running (not idle)
are kept, so the counts say where CPU goes. The collapsed stacks are written beside the
JSON, and the heaviest functions (self and inclusive) are printed.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.shared.procs import BenchError

SAMPLE_RATE = 200
TOP = 12


def profile(pid: int, output: Path, action: Callable[[], Any]) -> dict[str, Any]:
    """Run ``action`` while py-spy samples ``pid``; the summary of the samples."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise BenchError("py-spy is not installed (pip install py-spy)")
    argv = [
        py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE), "--nonblocking", "--gil",
        "--threads", "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    log = output.with_suffix(".log")
    with log.open("wb") as log_file:
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            # py-spy needs a moment to attach before the samples mean anything.
            subprocess.run(["sleep", "1"], check=False)
            action()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not output.exists():
        raise BenchError(f"py-spy wrote nothing: {log.read_text(errors='replace')[-1000:]}")
    return summarise(output)


# Inclusive counts are shown for frames of these packages (not the start-up frames).
INTERESTING = ("dicom_gateway/", "worklist/", "pynetdicom/", "pydicom/", "starlette/", "uvicorn/")
BORING = ("worklist/cli.py", "worklist/__main__.py", "uvicorn/main.py", "uvicorn/server.py")


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``function (path/to/module.py)``."""
    name, _, where = frame.partition(" (")
    module = where.rsplit(":", 1)[0]
    return f"{name} ({module})" if module else name


def _interesting(name: str) -> bool:
    return any(p in name for p in INTERESTING) and not any(p in name for p in BORING)


def summarise(path: Path) -> dict[str, Any]:
    """Total samples, per thread, and the heaviest functions by self and inclusive samples."""
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[re.sub(r"\d+", "N", frames[0].split("): ", 1)[-1])] += count
        names = [_frame_name(f) for f in frames[1:]]
        if names:
            self_samples[names[-1]] += count
        for name in set(names):
            if _interesting(name):
                inclusive[name] += count
    return {
        "samples": total,
        "rate_per_second": SAMPLE_RATE,
        "threads": threads.most_common(TOP),
        "self": self_samples.most_common(TOP),
        "inclusive": inclusive.most_common(TOP * 2),
    }


def format_summary(label: str, summary: dict[str, Any]) -> str:
    """The heaviest functions as text."""
    total = max(1, int(summary["samples"]))
    seconds = total / SAMPLE_RATE
    lines = [f"{label}: {total} on-CPU samples (~{seconds:.1f} CPU s at {SAMPLE_RATE}/s)"]
    lines.append("  by thread:")
    for name, count in summary["threads"][:TOP]:
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    for title in ("self", "inclusive"):
        lines.append(f"  by {title} samples:")
        for name, count in summary[title][:TOP]:
            lines.append(f"    {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)
