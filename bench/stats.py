"""Every network-performance endpoint on the 1M-study database, against the worklist.

    python -m bench.stats [--requests 30] [--warmup 3] [--days 90] [--month YYYY-MM]
                          [--only NAME,...] [--redis-url URL] [--quiet-wait MINUTES]

One ``worklist api`` process (as ``bench.worklist`` starts it) over ``bench_worklist``
(``bench.load_studies.ensure_loaded``: reused when it holds the data set;
``BENCH_WORKLIST_DATABASE`` names a copy instead); demand's daily rollup is first brought
up to date as the worker keeps it (``worklist.stats.rollup``); the admin logs in through
the real login. Each endpoint DESIGN names under "Network performance" (and
``/stats/peer-review``) is sent ``--requests`` times, one request at a time from one
keep-alive client, after ``--warmup`` requests: per endpoint the latency percentiles (the
whole body read, so the extract's CSV is timed to its last byte) and the CPU per request
of the API process and of its PostgreSQL backends (``CpuMeter``, from ``/proc``). The
anchor is a plain ``GET /api/v1/worklist`` measured the same way in the same run (before
and after the endpoints: a drift between the two shows a machine whose load changed);
every endpoint is also given as ratios to it. The aim is < 300 ms per endpoint.

An endpoint the API does not serve (absent from ``/openapi.json``) is reported as missing
in one line; one that answers an error is recorded with its status, and the run goes on.
Results: ``bench/out/stats-<time>.json``. See bench/README.md ("Stats benchmark").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from bench import load_studies
from bench.shared.dbcpu import CpuMeter
from bench.shared.procs import install_signal_handlers
from bench.shared.services import random_secret
from bench.shared.stats import fmt_ms, host_info, percentiles, shown_path
from bench.shared.worklist_api import ApiCluster, BenchUser, log_in, settle
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.stats import rollup

OUT_DIR = Path(__file__).resolve().parent / "out"
# Redis db of this benchmark (ingest 15, worklist 14, alerts 13, retrieve 12, qido 11,
# hl7 10).
REDIS_URL = "redis://127.0.0.1:6379/9"
AIM_MS = 300.0
ANCHOR = "worklist"
TURNAROUND_GROUPS = ("site", "modality", "priority", "patient_source", "week", "month")


@dataclass(frozen=True)
class Endpoint:
    """One request kind: a name, the route it needs, and its query."""

    name: str
    route: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        """The request's path and query string."""
        return self.route + (f"?{urlencode(self.params)}" if self.params else "")


def endpoints(*, since: date, until: date, month: str) -> list[Endpoint]:
    """The anchor, then every stats endpoint, each with the period it is asked for."""
    period = (("since", since.isoformat()), ("until", until.isoformat()))
    stats = "/api/v1/stats"
    kinds = [Endpoint(ANCHOR, "/api/v1/worklist")]
    kinds += [
        Endpoint(f"turnaround_{group}", f"{stats}/turnaround", (*period, ("group_by", group)))
        for group in TURNAROUND_GROUPS
    ]
    kinds += [
        Endpoint("breaches", f"{stats}/breaches"),
        Endpoint("backlog", f"{stats}/backlog"),
        Endpoint("demand", f"{stats}/demand", period),
        Endpoint("flows", f"{stats}/flows", period),
        Endpoint("alerts", f"{stats}/alerts", period),
        Endpoint("workload", f"{stats}/workload", period),
        Endpoint("extract_csv", f"{stats}/extract.csv", (("month", month),)),
        Endpoint("peer_review", f"{stats}/peer-review", period),
    ]
    return kinds


def last_full_month(today: date) -> str:
    """``YYYY-MM`` of the month before ``today``'s."""
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


class StatsApi(ApiCluster):
    """The benchmark's API process, on this benchmark's Redis database."""

    def __init__(self, workdir: Path, secret: str, redis_url: str) -> None:
        super().__init__(workdir, 1, secret)
        self.redis_url = redis_url

    def env(self, port: int) -> dict[str, str]:
        """``ApiCluster``'s environment with this benchmark's Redis."""
        return {**super().env(port), "WORKLIST_REDIS_URL": self.redis_url}


def roll_up_demand() -> tuple[int, float]:
    """Bring demand's daily rollup up to date, as a running worker keeps it: days rolled
    and seconds taken (the first run on a fresh copy rolls ``rollup.ROLLUP_DAYS`` days,
    ``rollup.DAYS_PER_RUN`` per transaction; later runs only the days since)."""
    settings = Settings(database_url=load_studies.database_url())

    async def run() -> int:
        engine = make_async_engine(settings.require_database_url(), pool_size=1)
        sessions = make_async_sessionmaker(engine)
        total = 0
        try:
            while True:
                async with sessions() as session, session.begin():
                    done = await rollup.roll_up(session, settings)
                if not done:
                    return total
                total += done
        finally:
            await engine.dispose()

    started = time.perf_counter()
    days = asyncio.run(run())
    return days, time.perf_counter() - started


def admin_user() -> BenchUser:
    """The data set's first admin (sees every site: the largest figures)."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT username FROM users WHERE role = 'admin' AND active ORDER BY id LIMIT 1"
        ).fetchone()
    if row is None:
        raise SystemExit("bench.stats: no admin in bench_worklist (python -m bench.load_studies)")
    return BenchUser(str(row[0]), "admin", [])


def served_routes(http: httpx.Client) -> set[str]:
    """The paths the running API serves (its OpenAPI document)."""
    response = http.get("/openapi.json")
    response.raise_for_status()
    return set(response.json()["paths"])


def measure(
    http: httpx.Client, cluster: ApiCluster, kind: Endpoint, token: str, requests: int, warmup: int
) -> dict[str, Any]:
    """``warmup`` then ``requests`` sequential GETs: latency, bytes, CPU per request."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(warmup):
        response = http.get(kind.path, headers=headers)
        if response.status_code != 200:
            return {"status": f"error {response.status_code}", "detail": response.text[:300]}
    latencies: list[float] = []
    size = 0
    meter = CpuMeter(cluster.pids).start()
    client_before = time.process_time()
    for _ in range(requests):
        started = time.perf_counter()
        response = http.get(kind.path, headers=headers)
        latencies.append(1000 * (time.perf_counter() - started))
        if response.status_code != 200:
            return {"status": f"error {response.status_code}", "detail": response.text[:300]}
        size += len(response.content)
    cpu = meter.stop(time.process_time() - client_before)
    cluster.check_alive()
    return {
        "status": "ok",
        "path": kind.path,
        "requests": requests,
        "latency_ms": percentiles(latencies),
        "bytes_per_response": size // requests,
        "api_cpu_ms": round(1000 * cpu["api_cpu_seconds"] / requests, 2),
        "db_cpu_ms": round(1000 * cpu["database_cpu_seconds"] / requests, 2),
        "cpu": cpu,
    }


def combine(first: dict[str, Any], second: dict[str, Any]) -> dict[str, float]:
    """The anchor's figures over both of its measurements (means of the two)."""
    keys = ("api_cpu_ms", "db_cpu_ms")
    combined = {key: (first[key] + second[key]) / 2 for key in keys}
    for pct in ("p50", "p95"):
        combined[pct] = (first["latency_ms"][pct] + second["latency_ms"][pct]) / 2
    return combined


def ratios(result: dict[str, Any], anchor: dict[str, float]) -> dict[str, float]:
    """``result`` as multiples of the anchor's figures."""
    cpu = result["api_cpu_ms"] + result["db_cpu_ms"]
    anchor_cpu = anchor["api_cpu_ms"] + anchor["db_cpu_ms"]
    return {
        "p50": round(result["latency_ms"]["p50"] / anchor["p50"], 2),
        "p95": round(result["latency_ms"]["p95"] / anchor["p95"], 2),
        "cpu": round(cpu / anchor_cpu, 2) if anchor_cpu else float("nan"),
    }


def print_row(name: str, result: dict[str, Any]) -> None:
    """One line of the table."""
    if result["status"] != "ok":
        print(f"{name:26} {result['status']}", flush=True)
        return
    latency = result["latency_ms"]
    ratio = result.get("ratio", {})
    print(
        f"{name:26} p50 {fmt_ms(latency['p50']):>8} p95 {fmt_ms(latency['p95']):>8} ms   "
        f"api {result['api_cpu_ms']:7.1f} db {result['db_cpu_ms']:7.1f} ms CPU   "
        f"x{ratio.get('p50', 1.0):.1f} p50 x{ratio.get('cpu', 1.0):.1f} CPU",
        flush=True,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the API, measure every endpoint, stop it; the figures."""
    until = date.today()
    kinds = endpoints(
        since=until - timedelta(days=args.days),
        until=until,
        month=args.month or last_full_month(until),
    )
    chosen = {name for name in args.only.split(",") if name}
    cluster = StatsApi(
        Path(tempfile.mkdtemp(prefix="bench-stats-")), random_secret(), args.redis_url
    )
    results: dict[str, Any] = {}
    missing: list[str] = []
    cluster.start()
    try:
        admin = admin_user()
        log_in([admin], cluster.ports[0])
        settle(cluster, args.quiet_wait)
        with httpx.Client(base_url=f"http://127.0.0.1:{cluster.ports[0]}", timeout=120) as http:
            routes = served_routes(http)
            anchor = kinds[0]
            first = measure(http, cluster, anchor, admin.token, args.requests, args.warmup)
            if first["status"] != "ok":
                raise SystemExit(f"bench.stats: the anchor failed: {first}")
            print_row("worklist (anchor)", first)
            for kind in kinds[1:]:
                if chosen and kind.name not in chosen:
                    continue
                if kind.route not in routes:
                    missing.append(kind.name)
                    results[kind.name] = {"status": "missing", "path": kind.path}
                    continue
                results[kind.name] = measure(
                    http, cluster, kind, admin.token, args.requests, args.warmup
                )
            second = measure(http, cluster, anchor, admin.token, args.requests, args.warmup)
    finally:
        cluster.stop()
    anchor_figures = combine(first, second)
    for name, result in results.items():
        if result["status"] == "ok":
            result["ratio"] = ratios(result, anchor_figures)
            result["under_aim"] = result["latency_ms"]["p95"] < AIM_MS
            print_row(name, result)
    print_row("worklist (anchor, again)", second)
    if missing:
        print(f"missing (not served by this API): {', '.join(missing)}", flush=True)
    over = [n for n, r in results.items() if r["status"] == "ok" and not r["under_aim"]]
    print(f"p95 over {AIM_MS:.0f} ms: {', '.join(over) or 'none'}", flush=True)
    return {
        "anchor": {"first": first, "second": second, "combined": anchor_figures},
        "endpoints": results,
        "missing": missing,
        "aim_ms": AIM_MS,
        "period": {"days": args.days, "until": until.isoformat()},
        "api": cluster.describe(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="measured requests per endpoint")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests first")
    parser.add_argument("--days", type=int, default=90, help="since = today - DAYS, until = today")
    parser.add_argument(
        "--month", default="", help="extract.csv month (default: the last full one)"
    )
    parser.add_argument("--only", default="", help="comma-separated endpoint names")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument(
        "--quiet-wait", type=float, default=0.5, help="minutes to wait for a quiet machine"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    install_signal_handlers()
    command = shlex.join(["python", "-m", "bench.stats", *(sys.argv[1:] if argv is None else argv)])
    info = load_studies.ensure_loaded()
    days, seconds = roll_up_demand()
    print(f"demand rollup: {days} days rolled up in {seconds:.1f} s", flush=True)
    figures = run(args)
    figures["rollup"] = {"days_rolled": days, "seconds": round(seconds, 1)}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = OUT_DIR / f"stats-{stamp}.json"
    document = {
        "command": command,
        "started": stamp,
        "host": host_info(),
        "data_set": info.as_dict(),
        **figures,
    }
    out.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    print(f"results: {shown_path(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
