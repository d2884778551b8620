"""DICOM pushes with DCMTK storescu: the files as they are, one or several associations."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.dataset import DataSet
from bench.shared.procs import DCMTK_STORESCU, BenchError, child_env, run_checked
from bench.shared.services import CALLING_AET
from bench.shared.targets import Target

PUSH_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RunResult:
    """One timed push: wall seconds, and CPU seconds of the receiver and its database."""

    seconds: float
    receiver_cpu: float
    database_cpu: float


def storescu_command(
    called_aet: str, port: int, paths: Sequence[Path], *, scan_directories: bool = False
) -> list[str]:
    """One DCMTK storescu push of ``paths`` (files, or directories to scan) to ``port``.

    ``-R`` proposes only the presentation contexts the files need (their SOP classes,
    each with its own transfer syntax first), as a PACS pushing given studies does; the
    files are sent as they are, without conversion.
    """
    scan = ["+sd"] if scan_directories else []
    return [
        DCMTK_STORESCU,
        "-aet",
        CALLING_AET,
        "-aec",
        called_aet,
        "-R",
        *scan,
        "127.0.0.1",
        str(port),
        *map(str, paths),
    ]


def storescu_argv(target: Target, files: list[Path]) -> list[str]:
    """One DCMTK storescu push of ``files`` to ``target``."""
    return storescu_command(target.called_aet, target.port, files)


def push_parallel(argvs: Sequence[list[str]], logdir: Path, label: str, receiver: str) -> float:
    """Run every storescu command at once; return seconds from start until all exit."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    logs: list[IO[bytes]] = []
    env = child_env()
    try:
        start = time.perf_counter()
        for index, argv in enumerate(argvs):
            log_path = logdir / f"storescu-{label}-{index}.log"
            log: IO[bytes] = log_path.open("wb")
            logs.append(log)
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            procs.append((proc, log_path))
        for proc, _ in procs:
            proc.wait(timeout=PUSH_TIMEOUT)
        elapsed = time.perf_counter() - start
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
        for log in logs:
            log.close()
    for proc, log_path in procs:
        output = log_path.read_text(errors="replace")
        if proc.returncode != 0 or "E: " in output:
            raise BenchError(
                f"storescu to {receiver} failed (exit {proc.returncode}):\n{output[-3000:]}"
            )
    return elapsed


def push(target: Target, parts: list[list[Path]], logdir: Path, label: str) -> float:
    """Run one storescu per part at once; return seconds from start until all exit."""
    argvs = [storescu_argv(target, files) for files in parts]
    return push_parallel(argvs, logdir, label, target.name)


def push_files(files: Sequence[Path], port: int, called_aet: str, log_path: Path) -> None:
    """Send ``files`` with DCMTK storescu (as stored, one association); fail on any error."""
    output = run_checked(storescu_command(called_aet, port, files), timeout=PUSH_TIMEOUT)
    log_path.write_text(output)
    if "E: " in output:
        raise BenchError(f"storescu to {called_aet} reported errors:\n{output[-3000:]}")


def run_once(
    target: Target, data: DataSet, associations: int, logdir: Path, label: str
) -> RunResult:
    """Fresh receiver, warm-up instance, timed push, verification, stop and wipe."""
    try:
        target.start()
        push(target, [[data.warmup_file]], logdir, f"{label}-warmup")
        before = target.cpu_snapshot()
        seconds = push(target, data.split(associations), logdir, label)
        receiver_cpu, database_cpu = target.cpu_snapshot().since(before)
        target.verify(data)
        return RunResult(seconds, receiver_cpu, database_cpu)
    finally:
        target.stop()
