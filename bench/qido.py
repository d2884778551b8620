"""QIDO-RS benchmark: the study searches a viewer sends, ours beside Orthanc, same studies.

    python -m bench.qido [--studies 20000] [--clients 8] [--duration 15] [--quiet-wait 2]

See bench/README.md ("QIDO-RS benchmark") for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import qido_data
from bench.qido_data import PARTS, QidoSet
from bench.qido_results import (
    DICOM_JSON,
    KIND_LABELS,
    SIDES,
    Query,
    Side,
    format_table,
    measure,
    path_of,
    queries,
)
from bench.shared import prereqs
from bench.shared.procs import REGISTRY, BenchError, install_signal_handlers
from bench.shared.push import push_parallel, storescu_command
from bench.shared.services import gateway_available, pg_admin_conninfo
from bench.shared.stacks import OrthancDicomWeb, WorklistStack
from bench.shared.stats import host_info, shown_path, wait_for_quiet

OUT_DIR = Path(__file__).resolve().parent / "out"
DATABASE = "bench_qido"
ORTHANC_DATABASE = "bench_qido_orthanc"
# Redis db of this benchmark (ingest 15, worklist 14, alerts 13, retrieve 12); flushed.
REDIS_URL = "redis://127.0.0.1:6379/11"
RADIOLOGIST = "bench-qido-rad"
NEEDS = [
    prereqs.DCMTK,
    prereqs.ORTHANC_SERVER,
    prereqs.ORTHANC_POSTGRESQL,
    prereqs.ORTHANC_DICOMWEB,
]


def load(data: QidoSet, name: str, port: int, called_aet: str, logdir: Path) -> float:
    """Push every study, one storescu association per part directory; the seconds taken."""
    argvs = [
        storescu_command(called_aet, port, [part], scan_directories=True) for part in data.parts
    ]
    print(f"loading {data.count} studies into {name} ({PARTS} associations) ...", flush=True)
    seconds = push_parallel(argvs, logdir, f"load-{name}", name)
    print(f"  {seconds:.1f} s ({data.count / seconds:.0f} studies/s)", flush=True)
    return seconds


def count_ours() -> int:
    """Studies in our index."""
    with psycopg.connect(pg_admin_conninfo(DATABASE)) as conn:
        row = conn.execute("SELECT count(*) FROM studies").fetchone()
    return int(row[0]) if row else 0


def check_answers(sides: list[Side], wanted: list[Query]) -> dict[str, dict[str, int]]:
    """One request of each kind per server: 200 and exactly the expected number of studies."""
    answers: dict[str, dict[str, int]] = {}
    with httpx.Client(timeout=60) as http:
        for query in wanted:
            answers[query.kind] = {}
            for side in sides:
                headers = {"Accept": DICOM_JSON}
                if side.token:
                    headers["Authorization"] = f"Bearer {side.token}"
                url = f"http://127.0.0.1:{side.port}{path_of(side, query)}"
                response = http.get(url, headers=headers)
                if response.status_code != 200:
                    raise BenchError(f"{side.name} {query.kind}: {response.status_code}")
                found = len(response.json())
                answers[query.kind][side.name] = found
                if found != query.expected:
                    raise BenchError(
                        f"{side.name} {query.kind}: {found} studies, the data set says "
                        f"{query.expected} ({query.params})"
                    )
    return answers


def keep_logs(workdir: Path) -> Path:
    """Copy every log of a failed run to bench/out/ before the work dir is removed."""
    dest = OUT_DIR / f"failed-qido-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.rglob("*.log"):
        shutil.copy2(log, dest / f"{log.parent.name}-{log.name}")
    return dest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.qido",
        description="QIDO-RS study searches, ours beside Orthanc, loaded with the same studies.",
    )
    parser.add_argument("--studies", type=int, default=qido_data.DEFAULT_STUDIES)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (saturation)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each, uncounted")
    parser.add_argument("--quiet-wait", type=float, default=2.0, help="minutes, before each query")
    parser.add_argument("--redis-url", default=REDIS_URL, help="ours; its database is flushed")
    args = parser.parse_args(argv)
    if args.studies < 1 or args.clients < 1 or args.duration <= 0:
        parser.error("--studies, --clients and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prereqs.require("bench.qido", NEEDS)
    if not gateway_available():
        print("bench.qido: the gateway (dicom_gateway/, worklist/cli.py) is not there")
        return 2
    install_signal_handlers()
    command = shlex.join(["python", "-m", "bench.qido", *(sys.argv[1:] if argv is None else argv)])
    data = qido_data.load_or_generate(args.studies)
    print(f"data: {data.count} studies, {data.total_bytes / 1e6:.1f} MB ({shown_path(data.root)})")
    workdir = Path(tempfile.mkdtemp(prefix="bench-qido-"))
    ours = WorklistStack(
        workdir / "worklist", database=DATABASE, redis_url=args.redis_url, radiologist=RADIOLOGIST
    )
    orthanc = OrthancDicomWeb(workdir / "orthanc", database=ORTHANC_DATABASE, label="qido")
    load_seconds: dict[str, float] = {}
    cells: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    wanted = queries(data)
    answers: dict[str, dict[str, int]] = {}
    busy: dict[str, float] = {}
    try:
        print("starting ours (gateway + API) ...", flush=True)
        ours.start()
        load_seconds["ours"] = load(data, "ours", ours.dicom_port, ours.called_aet, ours.workdir)
        if (held := count_ours()) != data.count:
            raise BenchError(f"ours: {held} studies indexed, expected {data.count}")
        print("starting Orthanc (PostgreSQL index + DICOMweb) ...", flush=True)
        orthanc.start()
        load_seconds["orthanc"] = load(
            data, "orthanc", orthanc.port, orthanc.called_aet, orthanc.workdir
        )
        if (held := orthanc.count_studies()) != data.count:
            raise BenchError(f"orthanc: {held} studies, expected {data.count}")
        assert ours.api is not None
        assert orthanc.server is not None
        sides = [
            Side("ours", ours.api_port, "/dicomweb", ours.token(), ours.api.pid, DATABASE),
            Side("orthanc", orthanc.http_port, "/dicom-web", "", orthanc.server.pid,
                 ORTHANC_DATABASE),
        ]  # fmt: skip
        answers = check_answers(sides, wanted)
        for query in wanted:
            if args.quiet_wait > 0:
                busy[query.kind] = wait_for_quiet(args.quiet_wait)
            cells[query.kind] = {}
            for clients in dict.fromkeys((1, args.clients)):
                cells[query.kind][clients] = {}
                for side in sides:
                    print(f"{KIND_LABELS[query.kind]}, {clients} client(s), {side.name} ...",
                          flush=True)  # fmt: skip
                    cell = measure(
                        workdir, side, query,
                        clients=clients, duration=args.duration, warmup=args.warmup,
                    )  # fmt: skip
                    if cell["failed"]:
                        raise BenchError(f"{side.name} {query.kind}: {cell['errors'][:3]}")
                    cells[query.kind][clients][side.name] = cell
    except BenchError as exc:
        kept = keep_logs(workdir)
        print(f"FAILED: {exc}\nlogs kept in {shown_path(kept)}", file=sys.stderr)
        return 1
    finally:
        for stop in (ours.stop, orthanc.stop):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"stop failed: {exc}", file=sys.stderr)
        REGISTRY.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(format_table(cells))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"qido-{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "command": command,
                "host": host_info(),
                "load_average_end": os.getloadavg(),
                "when_unix": time.time(),
                "studies": data.count,
                "load_seconds": load_seconds,
                "queries": {q.kind: {"params": q.params, "expected": q.expected} for q in wanted},
                "answers": answers,
                "machine_busy_before": busy,
                "config": {
                    "ours": ours.describe(),
                    "orthanc": orthanc.describe(),
                    "clients": args.clients,
                    "duration": args.duration,
                    "warmup": args.warmup,
                    "sides": SIDES,
                },
                "results": cells,
            },
            indent=2,
        )
    )
    print(f"\nresults: {shown_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
