"""Retrieval benchmark: WADO-RS and C-MOVE of a 300-instance CT study, ours beside Orthanc.

    python -m bench.retrieve [--repeat 3] [--only move,wado] [--quiet-wait 2]

See bench/README.md ("Retrieval benchmark") for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import retrieve_profile
from bench.retrieve_clients import ACCEPT, RetrievalFailed, move_study, wado_study
from bench.retrieve_data import Study, load_or_generate
from bench.retrieve_results import KIND_LABELS, TARGETS, Cell, Run, format_table, measured, ratio
from bench.retrieve_servers import (
    DATABASE,
    ORTHANC_DATABASE,
    WORKSTATION_AET,
    OrthancStack,
    Receiver,
    WorklistStack,
)
from bench.shared import prereqs
from bench.shared.procs import REGISTRY, BenchError, install_signal_handlers
from bench.shared.push import push_files
from bench.shared.stats import host_info, shown_path, wait_for_quiet

OUT_DIR = Path(__file__).resolve().parent / "out"
KINDS = ("move", "wado")
RECEIVE_WAIT = 10.0
HTTP_TIMEOUT = 300.0


class Bench:
    """Both targets up with the study loaded, one receiver; runs and checks retrievals."""

    def __init__(self, workdir: Path, study: Study) -> None:
        self.study = study
        self.receiver = Receiver(workdir / "receiver")
        self.worklist = WorklistStack(workdir / "worklist", self.receiver)
        self.orthanc = OrthancStack(workdir / "orthanc", self.receiver)
        self.tokens: dict[str, str | None] = {}
        self.stored_bytes: dict[str, int] = {}
        self.http = httpx.Client(timeout=HTTP_TIMEOUT)

    def start(self) -> None:
        """Start everything and push the study to both targets (untimed)."""
        self.receiver.start()
        print("starting ours (gateway + API) and pushing the study ...", flush=True)
        self.worklist.start()
        push_files(
            self.study.files, self.worklist.dicom_port, self.worklist.called_aet,
            self.worklist.workdir / "storescu.log",
        )  # fmt: skip
        self.stored_bytes["worklist"] = self.worklist.verify(self.study)
        print("starting Orthanc (PostgreSQL index + DICOMweb) and pushing the study ...")
        self.orthanc.start()
        push_files(
            self.study.files, self.orthanc.port, self.orthanc.called_aet,
            self.orthanc.workdir / "storescu.log",
        )  # fmt: skip
        self.stored_bytes["orthanc"] = self.orthanc.verify(self.study)
        print(
            "stored bytes: sent {}, ours {}, Orthanc {}".format(
                self.study.total_bytes, self.stored_bytes["worklist"], self.stored_bytes["orthanc"]
            )
        )

    def stop(self) -> None:
        """Stop everything (also on failure)."""
        self.http.close()
        for stop in (self.worklist.stop, self.orthanc.stop, self.receiver.stop):
            with contextlib.suppress(Exception):
                stop()

    def wado_available(self) -> bool:
        """True once the API serves WADO-RS study retrieval."""
        spec = self.http.get(f"http://127.0.0.1:{self.worklist.api_port}/openapi.json").json()
        return "/dicomweb/studies/{study}" in spec.get("paths", {})

    def server_pgids(self, target: str) -> dict[str, int]:
        """Process group of each of a target's servers."""
        if target == "worklist":
            assert self.worklist.gateway is not None
            assert self.worklist.api is not None
            return {"gateway": self.worklist.gateway.pid, "api": self.worklist.api.pid}
        assert self.orthanc.server is not None
        return {"orthanc": self.orthanc.server.pid}

    def move(self, target: str) -> dict[str, Any]:
        """One C-MOVE of the study to the (emptied) receiver, checked."""
        stack = self.worklist if target == "worklist" else self.orthanc
        port = self.worklist.dicom_port if target == "worklist" else self.orthanc.port
        result = move_study(
            port, stack.called_aet, WORKSTATION_AET, WORKSTATION_AET, self.study.study_uid
        )
        deadline = time.monotonic() + RECEIVE_WAIT
        while len(self.receiver.files()) < self.study.count and time.monotonic() < deadline:
            time.sleep(0.01)
        received = self.receiver.files()
        if (
            result.completed != self.study.count
            or result.failed
            or len(received) != self.study.count
        ):
            raise RetrievalFailed(
                f"C-MOVE from {target}: {result.completed} completed, {result.failed} failed, "
                f"{len(received)} files received; expected {self.study.count}",
                result.seconds,
            )
        return {
            **asdict(result),
            "received_files": len(received),
            "received_bytes": sum(p.stat().st_size for p in received),
        }

    def wado(self, target: str) -> dict[str, Any]:
        """One WADO-RS retrieval of the whole study, checked."""
        stack = self.worklist if target == "worklist" else self.orthanc
        if target not in self.tokens:
            self.tokens[target] = self.worklist.token() if target == "worklist" else None
        result = wado_study(
            self.http, stack.wado_base, self.study.study_uid, self.tokens[target], self.study.count
        )
        if target == "worklist" and result.part_bytes != self.stored_bytes[target]:
            raise RetrievalFailed(
                f"WADO-RS from {target}: {result.part_bytes} bytes in parts, "
                f"{self.stored_bytes[target]} stored (the files are served as stored)",
                result.seconds,
            )
        return asdict(result)

    def run(self, target: str, kind: str) -> Run:
        """One measured retrieval."""
        action = self.move if kind == "move" else self.wado
        if kind == "move":
            self.receiver.clear()
        pgids = self.server_pgids(target)
        rss_pid = (
            pgids["orthanc"]
            if target == "orthanc"
            else pgids["gateway" if kind == "move" else "api"]
        )
        return measured(
            lambda: action(target),
            pgids=pgids,
            database=DATABASE if target == "worklist" else ORTHANC_DATABASE,
            receiver=self.receiver,
            rss_pid=rss_pid,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieve",
        description="WADO-RS and C-MOVE of a 300-instance CT study: ours beside Orthanc.",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument(
        "--only", default=",".join(KINDS), help="comma-separated retrievals: move, wado"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=2.0,
        help="minutes to wait for other work to leave the CPUs before each retrieval kind",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed runs, one more retrieval of ours under py-spy (pip install py-spy)",
    )
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.only.split(",") if k]
    if not args.kinds or any(k not in KINDS for k in args.kinds) or args.repeat < 1:
        parser.error("--only takes move and/or wado; --repeat must be positive")
    return args


def measure_kind(
    bench: Bench, kind: str, repeat: int, quiet_wait: float, notes: list[str]
) -> dict[str, Cell]:
    """Warm-up retrieval of each target, then ``repeat`` interleaved timed rounds."""
    label = KIND_LABELS[kind]
    for target in TARGETS:
        print(f"  {label} {target}: warm-up (untimed) ...", flush=True)
        warm = bench.run(target, kind)
        if warm.error is not None:
            print(f"    FAILED after {warm.seconds:.1f} s: {warm.error}")
            notes.append(
                f"{label} {target} warm-up failed after {warm.seconds:.1f} s: {warm.error}"
            )
    busy = wait_for_quiet(quiet_wait)
    print(f"  machine {busy:.0%} busy with other work before timing {label}")
    cells = {target: Cell(target, kind) for target in TARGETS}
    for rep in range(1, repeat + 1):
        for target in TARGETS:
            run = bench.run(target, kind)
            cells[target].runs.append(run)
            if run.error is not None:
                failed = f"FAILED after {run.seconds:.1f} s: {run.error}"
                print(f"  {label:<7} {target:<8} run {rep}: {failed}")
                continue
            print(
                f"  {label:<7} {target:<8} run {rep}: {run.seconds:.3f} s "
                f"({bench.study.total_bytes / 1e6 / run.seconds:.1f} MB/s; server CPU "
                f"{sum(run.server_cpu.values()):.2f} s, client CPU {run.client_cpu:.2f} s, "
                f"other work {run.other_cpu:.2f} CPU s)",
                flush=True,
            )
    return cells


def profile_ours(bench: Bench, kind: str, prefix: Path) -> dict[str, Any]:
    """One more (untimed) retrieval of ours while py-spy samples the serving process."""
    pgids = bench.server_pgids("worklist")
    pid = pgids["gateway" if kind == "move" else "api"]
    OUT_DIR.mkdir(exist_ok=True)
    output = prefix.with_name(prefix.name + "-pyspy.txt")
    print(f"  {KIND_LABELS[kind]} worklist under py-spy ...", flush=True)
    bench.receiver.clear()
    action = bench.move if kind == "move" else bench.wado
    summary = retrieve_profile.profile(pid, output, lambda: action("worklist"))
    summary["stacks"] = str(output)
    return summary


def keep_logs(workdir: Path) -> Path:
    """Copy the servers' logs of a failed run to bench/out/."""
    dest = OUT_DIR / f"failed-retrieve-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.rglob("*.log"):
        shutil.copy2(log, dest / f"{log.parent.name}-{log.name}")
    return dest


def report(
    args: argparse.Namespace,
    command: str,
    stamp: str,
    study: Study,
    bench: Bench,
    cells: dict[tuple[str, str], Cell],
    notes: list[str],
    load_start: tuple[float, float, float],
) -> dict[str, Any]:
    """Everything measured, as JSON."""
    return {
        "command": command,
        "started": stamp,
        "host": host_info(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "study": {
            "root": str(study.root),
            "study_uid": study.study_uid,
            "instances": study.count,
            "bytes": study.total_bytes,
        },
        "configuration": {
            "worklist": bench.worklist.describe(),
            "orthanc": bench.orthanc.describe(),
            "receiver": bench.receiver.describe(),
            "wado_client": f"httpx (streaming, Accept: {ACCEPT}, Accept-Encoding: identity)",
            "move_client": f"pynetdicom SCU as {WORKSTATION_AET}, Study Root, STUDY level",
        },
        "results": {
            f"{kind}/{target}": {
                "median_seconds": cell.seconds,
                "mb_per_second": study.total_bytes / 1e6 / cell.seconds,
                "ratio_vs_orthanc": ratio(cells, kind) if target == "worklist" else None,
                "runs": [{**asdict(run), "other_cpu": run.other_cpu} for run in cell.runs],
            }
            for (target, kind), cell in cells.items()
        },
        "notes": notes,
        "args": vars(args),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    needs = [prereqs.DCMTK, prereqs.ORTHANC_SERVER, prereqs.ORTHANC_POSTGRESQL]
    needs += [prereqs.ORTHANC_DICOMWEB] + ([prereqs.PY_SPY] if args.profile else [])
    prereqs.require("bench.retrieve", needs)
    install_signal_handlers()
    command = shlex.join(
        ["python", "-m", "bench.retrieve", *(sys.argv[1:] if argv is None else argv)]
    )
    load_start = os.getloadavg()
    study = load_or_generate()
    where = shown_path(study.root)
    print(f"study: {study.count} instances, {study.total_bytes / 1e6:.1f} MB ({where})")
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieve-"))
    bench = Bench(workdir, study)
    cells: dict[tuple[str, str], Cell] = {}
    notes: list[str] = []
    profiles: dict[str, dict[str, Any]] = {}
    try:
        bench.start()
        for kind in args.kinds:
            if kind == "wado" and not bench.wado_available():
                notes.append("WADO-RS skipped: the API has no /dicomweb/studies/{study} route yet")
                print(f"note: {notes[-1]}")
                continue
            print(f"{KIND_LABELS[kind]} ...", flush=True)
            for target, cell in measure_kind(
                bench, kind, args.repeat, args.quiet_wait, notes
            ).items():
                cells[(target, kind)] = cell
            if args.profile:
                profiles[kind] = profile_ours(bench, kind, OUT_DIR / f"retrieve-{stamp}-{kind}")
    except BenchError as exc:
        REGISTRY.stop_all()
        kept = keep_logs(workdir)
        print(f"\nBENCHMARK FAILED: {exc}\n(logs kept in {kept})", file=sys.stderr)
        return 1
    finally:
        bench.stop()
        REGISTRY.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    if not cells:
        print("nothing measured")
        return 1
    print()
    print("=" * 100)
    print(format_table(study, cells))
    for kind, summary in profiles.items():
        print()
        print(retrieve_profile.format_summary(f"{KIND_LABELS[kind]} (ours, py-spy)", summary))
    for note in notes:
        print(f"note: {note}")
    OUT_DIR.mkdir(exist_ok=True)
    out_path = OUT_DIR / f"retrieve-{stamp}.json"
    data = report(args, command, stamp, study, bench, cells, notes, load_start)
    data["profiles"] = profiles
    out_path.write_text(json.dumps(data, indent=2))
    print(f"results: {shown_path(out_path)}")
    print(f"reproduce: {command}")
    failed = sum(len(cell.runs) - len(cell.ok_runs) for cell in cells.values())
    if failed:
        print(f"{failed} retrieval(s) did not deliver the whole study (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        REGISTRY.stop_all()
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
