"""Results of the retrieval benchmark: timed runs with their CPU and memory, and the table."""

from __future__ import annotations

import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.retrieve_clients import RetrievalFailed, RssProbe
from bench.retrieve_data import Study
from bench.retrieve_servers import Receiver
from bench.shared.dbcpu import database_cpu
from bench.shared.procs import group_cpu_seconds
from bench.shared.stats import cpu_busy_seconds

KIND_LABELS = {"move": "C-MOVE", "wado": "WADO-RS"}
TARGETS = ("worklist", "orthanc")


@dataclass
class Run:
    """One timed retrieval and the CPU seconds spent during it."""

    seconds: float
    server_cpu: dict[str, float]
    database_cpu: float
    client_cpu: float
    receiver_cpu: float
    machine_cpu: float
    rss_baseline: int
    rss_peak: int
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def other_cpu(self) -> float:
        """CPU seconds of the rest of the machine (other work: noise)."""
        ours = sum(self.server_cpu.values()) + self.database_cpu
        return self.machine_cpu - ours - self.client_cpu - self.receiver_cpu


@dataclass
class Cell:
    """Every timed run of one target and one kind of retrieval."""

    target: str
    kind: str
    runs: list[Run] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[Run]:
        """The runs that delivered the whole study."""
        return [run for run in self.runs if run.error is None]

    def median(self, value: Callable[[Run], float]) -> float:
        """Median of ``value`` over the successful runs (NaN if none)."""
        runs = self.ok_runs
        return statistics.median(value(run) for run in runs) if runs else float("nan")

    @property
    def seconds(self) -> float:
        """Median wall time of the successful runs."""
        return self.median(lambda run: run.seconds)


def server_cpu(pgids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each of a target's process groups."""
    return {name: group_cpu_seconds(pgid) for name, pgid in pgids.items()}


def client_cpu() -> float:
    """CPU seconds so far of this process (the clients run here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(
    action: Callable[[], dict[str, Any]],
    *,
    pgids: dict[str, int],
    database: str,
    receiver: Receiver,
    rss_pid: int,
) -> Run:
    """Run ``action`` once, with CPU accounting and the server's resident memory sampled."""
    server_before = server_cpu(pgids)
    db_before = database_cpu(database)
    client_before = client_cpu()
    receiver_before = receiver.cpu()
    machine_before = cpu_busy_seconds()
    error: str | None = None
    with RssProbe(rss_pid) as probe:
        try:
            detail = action()
        except RetrievalFailed as exc:
            error = str(exc)
            detail = {"seconds": exc.seconds if exc.seconds is not None else float("nan")}
    machine = cpu_busy_seconds() - machine_before
    db_after = database_cpu(database)
    server_after = server_cpu(pgids)
    return Run(
        seconds=float(detail.pop("seconds")),
        server_cpu={name: server_after[name] - server_before[name] for name in pgids},
        database_cpu=sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()),
        client_cpu=client_cpu() - client_before,
        receiver_cpu=receiver.cpu() - receiver_before,
        machine_cpu=machine,
        rss_baseline=probe.baseline,
        rss_peak=probe.peak,
        detail=detail,
        error=error,
    )


def ratio(cells: dict[tuple[str, str], Cell], kind: str) -> float | None:
    """Our throughput over Orthanc's (above 1: faster)."""
    ours, theirs = cells.get(("worklist", kind)), cells.get(("orthanc", kind))
    if ours is None or theirs is None:
        return None
    return theirs.seconds / ours.seconds


def format_table(study: Study, cells: dict[tuple[str, str], Cell]) -> str:
    """The results as a text table."""
    header = (
        f"{'retrieval':<9} {'target':<9} {'ok':>5} {'seconds':>8} {'MB/s':>7} {'vs orthanc':>10} "
        f"{'server CPU s':>12} {'db CPU s':>8} {'client CPU s':>12} {'storescp CPU s':>14} "
        f"{'RSS peak MB':>11} {'growth MB':>9}"
    )
    repeats = max(len(cell.runs) for cell in cells.values())
    lines = [
        f"{study.count}-instance CT study, {study.total_bytes / 1e6:.1f} MB as sent "
        f"(MB = 10^6 bytes); median of the successful runs of {repeats}",
        header,
        "-" * len(header),
    ]
    for (target, kind), cell in cells.items():
        shown = ratio(cells, kind)
        vs = f"{shown:.2f}x" if shown is not None and target == "worklist" else "-"
        peak = max(run.rss_peak for run in cell.runs)
        growth = max(run.rss_peak - run.rss_baseline for run in cell.runs)
        receiver = f"{cell.median(lambda r: r.receiver_cpu):.2f}" if kind == "move" else "-"
        ok = f"{len(cell.ok_runs)}/{len(cell.runs)}"
        lines.append(
            f"{KIND_LABELS[kind]:<9} {target:<9} {ok:>5} {cell.seconds:>8.3f} "
            f"{study.total_bytes / 1e6 / cell.seconds:>7.1f} {vs:>10} "
            f"{cell.median(lambda r: sum(r.server_cpu.values())):>12.2f} "
            f"{cell.median(lambda r: r.database_cpu):>8.2f} "
            f"{cell.median(lambda r: r.client_cpu):>12.2f} {receiver:>14} "
            f"{peak / 1e6:>11.1f} {growth / 1e6:>9.1f}"
        )
    return "\n".join(lines)
