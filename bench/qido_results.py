"""Queries, measurements and the table of ``bench.qido``."""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.qido_data import LAST_DAY, QidoSet
from bench.shared.dbcpu import database_cpu
from bench.shared.loadrun import run_loadgen, summarise
from bench.shared.procs import group_cpu_seconds

DICOM_JSON = "application/dicom+json"
# What OHIF's study list sends (limit 101: one more than a page, to know there is more).
VIEWER_PARAMS = "limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060"
PAGE = 101
KINDS = ("default", "patient_name", "study_date")
KIND_LABELS = {
    "default": "study list",
    "patient_name": "PatientName=X*",
    "study_date": "StudyDate a-b",
}
SIDES = ("ours", "orthanc")


@dataclass(frozen=True)
class Side:
    """One server under test, as the load generator and the CPU accounting see it."""

    name: str
    port: int
    base_path: str  # "/dicomweb" or "/dicom-web"
    token: str
    pgid: int
    database: str


@dataclass(frozen=True)
class Query:
    """One query kind: its query string and how many studies it must return."""

    kind: str
    params: str
    expected: int


def queries(data: QidoSet) -> list[Query]:
    """The three kinds, with the answers the data set says each must give."""
    surnames = Counter(s.patient_name.split("^")[0] for s in data.studies)
    prefix = surnames.most_common(1)[0][0][:3]
    named = sum(1 for s in data.studies if s.patient_name.upper().startswith(prefix))
    year, month = LAST_DAY.year - 1, LAST_DAY.month  # one calendar month, a year back
    first = f"{year}{month:02d}01"
    last = f"{year}{month:02d}{calendar.monthrange(year, month)[1]:02d}"
    dated = sum(1 for s in data.studies if first <= s.study_date <= last)
    return [
        Query("default", VIEWER_PARAMS, min(PAGE, data.count)),
        Query("patient_name", f"PatientName={prefix}*&{VIEWER_PARAMS}", min(PAGE, named)),
        Query("study_date", f"StudyDate={first}-{last}&{VIEWER_PARAMS}", min(PAGE, dated)),
    ]


def path_of(side: Side, query: Query) -> str:
    """The request path of ``query`` on ``side``."""
    return f"{side.base_path}/studies?{query.params}"


def measure(
    workdir: Path, side: Side, query: Query, *, clients: int, duration: float, warmup: float
) -> dict[str, Any]:
    """``clients`` back-to-back loops of one query on one server: rate, latency, CPU."""
    template = {
        "name": query.kind,
        "method": "GET",
        "path": path_of(side, query),
        "token": side.token,
        "accept": DICOM_JSON,
    }
    plan = {
        "mode": "closed",
        "clients": clients,
        "duration": duration,
        "warmup": warmup,
        "seed": 5,
        "ports": [side.port],
        "templates": [template],
    }
    server_before = group_cpu_seconds(side.pgid)
    db_before = database_cpu(side.database)
    result = run_loadgen(workdir, plan, f"{side.name}-{query.kind}-{clients}")
    server = group_cpu_seconds(side.pgid) - server_before
    db_after = database_cpu(side.database)
    database = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
    summary = summarise(result)
    answered = max(1, summary["answered"])  # CPU covers the warm-up's answers too
    return {
        "clients": clients,
        "requests_per_second": summary["throughput_per_second"],
        "latency_ms": summary["latency_ms"],
        "ok": summary["ok"],
        "failed": summary["failed"],
        "errors": summary["errors"],
        "answered": summary["answered"],
        "server_cpu_seconds": round(server, 3),
        "database_cpu_seconds": round(database, 3),
        "server_cpu_ms_per_request": server * 1000 / answered,
        "database_cpu_ms_per_request": database * 1000 / answered,
        "cpu_ms_per_request": (server + database) * 1000 / answered,
        "loadgen_cpu_seconds": round(result["cpu_seconds"], 3),
    }


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def format_table(cells: dict[str, dict[int, dict[str, dict[str, Any]]]]) -> str:
    """One line per query kind, client count and server; ours also as ratios to Orthanc."""
    header = (
        f"{'query':<15} {'clients':>7} {'server':<8} {'req/s':>8} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'p99 ms':>8} {'srv CPU':>8} {'db CPU':>7} {'CPU/req':>8} "
        f"{'req/s vs':>9} {'p95 vs':>7} {'CPU vs':>7}"
    )
    lines = [header, "-" * len(header)]
    for kind, by_clients in cells.items():
        for clients, sides in by_clients.items():
            theirs = sides["orthanc"]
            for name in SIDES:
                cell = sides[name]
                latency = cell["latency_ms"]
                lines.append(
                    f"{KIND_LABELS[kind]:<15} {clients:>7} {name:<8} "
                    f"{cell['requests_per_second'] or 0:>8.1f} {latency['p50'] or 0:>8.1f} "
                    f"{latency['p95'] or 0:>8.1f} {latency['p99'] or 0:>8.1f} "
                    f"{cell['server_cpu_ms_per_request']:>8.2f} "
                    f"{cell['database_cpu_ms_per_request']:>7.2f} "
                    f"{cell['cpu_ms_per_request']:>8.2f} "
                    f"{_ratio(cell['requests_per_second'], theirs['requests_per_second']):>9} "
                    f"{_ratio(latency['p95'], theirs['latency_ms']['p95']):>7} "
                    f"{_ratio(cell['cpu_ms_per_request'], theirs['cpu_ms_per_request']):>7}"
                )
    return "\n".join(lines)
