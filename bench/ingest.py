"""Ingest benchmark: DCMTK storescu pushes one data set to several receivers.

    python -m bench.ingest [--repeat 3] [--associations 1,4] [--only TARGET[,TARGET]]

See bench/README.md for what each target is and how to read the output.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.dataset import DataSet, load_or_generate
from bench.shared import prereqs
from bench.shared.appearance import LatencyProbe, LatencyResult
from bench.shared.procs import (
    DCMTK_STORESCU,
    REGISTRY,
    BenchError,
    install_signal_handlers,
)
from bench.shared.push import RunResult, run_once
from bench.shared.services import CALLING_AET, gateway_available
from bench.shared.stats import host_info, shown_path
from bench.shared.targets import ALL_TARGETS, make_target

OUT_DIR = Path(__file__).resolve().parent / "out"
REFERENCES = ("orthanc-pg", "pynetdicom-floor", "dcmtk")


@dataclass
class Cell:
    """All timed runs of one target at one association count."""

    target: str
    associations: int
    runs: list[RunResult] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        """Wall seconds of each run."""
        return [run.seconds for run in self.runs]

    @property
    def median(self) -> float:
        """Median wall time of the push."""
        return statistics.median(self.seconds)

    @property
    def receiver_cpu(self) -> float:
        """Median CPU seconds of the receiver's processes during the push."""
        return statistics.median(run.receiver_cpu for run in self.runs)

    @property
    def database_cpu(self) -> float:
        """Median CPU seconds of the receiver's PostgreSQL backends during the push."""
        return statistics.median(run.database_cpu for run in self.runs)


def ratio(cells: dict[str, Cell], target: str, reference: str) -> float | None:
    """How many times faster ``target`` is than ``reference`` (None if not measured)."""
    if target not in cells or reference not in cells:
        return None
    return cells[reference].median / cells[target].median


def format_table(data: DataSet, associations: int, cells: dict[str, Cell]) -> str:
    """The results for one association count as a text table."""
    header = (
        f"{'target':<18} {'seconds':>8} {'inst/s':>8} {'MB/s':>7} "
        f"{'vs orthanc-pg':>13} {'vs floor':>9} {'vs dcmtk':>9} {'rx CPU s':>9} {'db CPU s':>9}"
    )
    lines = [
        f"{associations} association{'s' if associations > 1 else ''} "
        f"({data.count} instances, {data.total_bytes / 1e6:.1f} MB; "
        f"median of {max(len(c.seconds) for c in cells.values())})",
        header,
        "-" * len(header),
    ]
    for name, cell in cells.items():
        ratios = [ratio(cells, name, ref) for ref in REFERENCES]
        shown = [f"{r:.2f}x" if r is not None else "-" for r in ratios]
        lines.append(
            f"{name:<18} {cell.median:>8.3f} {data.count / cell.median:>8.1f} "
            f"{data.total_bytes / 1e6 / cell.median:>7.1f} "
            f"{shown[0]:>13} {shown[1]:>9} {shown[2]:>9} "
            f"{cell.receiver_cpu:>9.2f} {cell.database_cpu:>9.2f}"
        )
    return "\n".join(lines)


def keep_logs(workdir: Path) -> Path:
    """Copy every log of a failed run to bench/out/ before the work dir is removed."""
    dest = OUT_DIR / f"failed-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.rglob("*.log"):
        shutil.copy2(log, dest / log.name)
    return dest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Push one synthetic set with DCMTK storescu to each receiver and compare.",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument(
        "--associations",
        default="1,4",
        help="comma-separated concurrent association counts (default 1,4)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help=f"run only these targets (repeat or comma-separate): {', '.join(ALL_TARGETS)}",
    )
    parser.add_argument(
        "--latency-rounds", type=int, default=10, help="appearance-latency studies (0 = skip)"
    )
    parser.add_argument("--dcmtk-pdu", type=int, default=131072, help="storescp -pdu")
    parser.add_argument(
        "--floor-pdu", type=int, default=0, help="floor SCP maximum PDU (0 = unlimited)"
    )
    parser.add_argument(
        "--floor-chunked", action="store_true", help="floor SCP spools datasets to temp files"
    )
    parser.add_argument(
        "--gateway-pdu", type=int, default=None, help="WORKLIST_GATEWAY_MAX_PDU for the gateway"
    )
    parser.add_argument(
        "--orthanc-pg-conns",
        type=int,
        default=1,
        help="PostgreSQL IndexConnectionsCount for orthanc-pg (plugin default 1)",
    )
    parser.add_argument(
        "--orthanc-pdu", type=int, default=16384, help="Orthanc MaximumPduLength (default 16384)"
    )
    args = parser.parse_args(argv)
    args.targets = [t for item in args.only for t in item.split(",") if t] or list(ALL_TARGETS)
    for name in args.targets:
        if name not in ALL_TARGETS:
            parser.error(f"unknown target {name!r}; choose from {', '.join(ALL_TARGETS)}")
    args.association_counts = [int(a) for a in args.associations.split(",") if a]
    if args.repeat < 1 or not args.association_counts or min(args.association_counts) < 1:
        parser.error("--repeat and --associations must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    command = shlex.join(
        ["python", "-m", "bench.ingest", *(sys.argv[1:] if argv is None else argv)]
    )
    targets: list[str] = list(args.targets)
    notes: list[str] = []
    needs = [prereqs.DCMTK]
    if any(name.startswith("orthanc") for name in targets):
        needs.append(prereqs.ORTHANC_SERVER)
    if "orthanc-pg" in targets:
        needs.append(prereqs.ORTHANC_POSTGRESQL)
    prereqs.require("bench.ingest", needs)
    if "gateway" in targets and not gateway_available():
        if args.only:
            print("the gateway (dicom_gateway/server.py, worklist/cli.py) is not there yet")
            return 2
        targets.remove("gateway")
        notes.append("gateway skipped: dicom_gateway/server.py or worklist/cli.py missing")
    run_latency = args.latency_rounds > 0 and ("gateway" in targets)
    if args.latency_rounds > 0 and not run_latency:
        notes.append("appearance latency skipped: gateway not measured")

    load_start = os.getloadavg()
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs before the run; "
            "other work on this machine will add noise"
        )
    data = load_or_generate()
    print(
        f"data set: {data.count} instances, {data.total_bytes / 1e6:.1f} MB "
        f"({shown_path(data.root)})"
    )
    for note in notes:
        print(f"note: {note}")
    options = {
        "dcmtk_pdu": args.dcmtk_pdu,
        "floor_pdu": args.floor_pdu,
        "floor_chunked": args.floor_chunked,
        "gateway_pdu": args.gateway_pdu,
        "orthanc_pg_conns": args.orthanc_pg_conns,
        "orthanc_pdu": args.orthanc_pdu,
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    logdir = workdir / "logs"
    logdir.mkdir()
    results: dict[int, dict[str, Cell]] = {}
    latency: LatencyResult | None = None
    configs: dict[str, Any] = {}
    try:
        for associations in args.association_counts:
            cells = {name: Cell(name, associations) for name in targets}
            results[associations] = cells
            # Interleave targets within each repetition so drift hits all of them alike.
            for rep in range(1, args.repeat + 1):
                for name in targets:
                    target = make_target(name, workdir / name, options)
                    configs[name] = target.describe()
                    label = f"{name}-a{associations}-r{rep}"
                    run = run_once(target, data, associations, logdir, label)
                    cells[name].runs.append(run)
                    print(
                        f"  {name:<18} {associations} assoc  run {rep}: {run.seconds:.3f} s "
                        f"(receiver CPU {run.receiver_cpu:.2f} s, "
                        f"db CPU {run.database_cpu:.2f} s, load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
            print()
            print(format_table(data, associations, cells))
            print()
        if run_latency:
            print("appearance latency (gateway + API) ...")
            latency = LatencyProbe(workdir, rounds=args.latency_rounds).run()
    except BenchError as exc:
        REGISTRY.stop_all()
        kept = keep_logs(workdir)
        print(f"\nBENCHMARK FAILED: {exc}\n(logs kept in {kept})", file=sys.stderr)
        return 1
    finally:
        REGISTRY.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    print("=" * 78)
    for associations, cells in results.items():
        print(format_table(data, associations, cells))
        print()
    if latency is not None:
        print(
            f"appearance latency (last C-STORE response -> listed as receiving with "
            f"{latency.instances_per_study} instances, {len(latency.delays)} studies): "
            f"median {latency.median * 1000:.0f} ms, max {latency.maximum * 1000:.0f} ms "
            f"(one worklist request takes {latency.median_poll * 1000:.0f} ms)"
        )
    for note in notes:
        print(f"note: {note}")

    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    out_path = OUT_DIR / f"ingest-{stamp}.json"
    report = {
        "command": command,
        "started": stamp,
        "host": host_info(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "data_set": {
            "root": str(data.root),
            "instances": data.count,
            "bytes": data.total_bytes,
            "study_uids": list(data.study_uids),
        },
        "sender": {"program": DCMTK_STORESCU, "argv": ["-aet", CALLING_AET, "-aec", "<AET>", "-R"]},
        "targets": configs,
        "results": {
            str(associations): {
                name: {
                    "seconds": cell.seconds,
                    "median_seconds": cell.median,
                    "receiver_cpu_seconds": [run.receiver_cpu for run in cell.runs],
                    "database_cpu_seconds": [run.database_cpu for run in cell.runs],
                    "median_receiver_cpu_seconds": cell.receiver_cpu,
                    "median_database_cpu_seconds": cell.database_cpu,
                    "instances_per_second": data.count / cell.median,
                    "mb_per_second": data.total_bytes / 1e6 / cell.median,
                    **{f"ratio_vs_{ref}": ratio(cells, name, ref) for ref in REFERENCES},
                }
                for name, cell in cells.items()
            }
            for associations, cells in results.items()
        },
        "appearance_latency": latency.as_dict() if latency is not None else None,
        "notes": notes,
    }
    out_path.write_text(json.dumps(report, indent=2))
    print(f"results: {shown_path(out_path)}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        REGISTRY.stop_all()
        print("\ninterrupted; receivers stopped", file=sys.stderr)
        sys.exit(130)
