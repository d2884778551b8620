"""Worklist benchmark: 1,000,000 studies, open-loop latency, saturation, next-claims, plans.

    python -m bench.worklist [--api-processes 1,2] [--rate 200] [--duration 30]
                             [--clients 50] [--saturation-seconds 15] [--reload]
                             [--without-indexes]

See bench/README.md ("Worklist benchmark") for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex

from bench import load_studies
from bench.explain import Plan, explain_requests
from bench.shared.procs import (
    REGISTRY,
    BenchError,
    install_signal_handlers,
)
from bench.shared.services import random_secret
from bench.shared.stats import fmt_ms, host_info, shown_path, wait_for_quiet
from bench.shared.worklist_api import (
    MIX,
    REDIS_URL,
    ROLE_SHARE,
    ApiCluster,
    BenchUser,
    closed_loop,
    fetch_cursors,
    log_in,
    open_loop,
    pick_users,
    restore_claims,
    settle,
    variant_query,
    worklist_templates,
)
from worklist.config import Settings
from worklist.models import Study

OUT_DIR = Path(__file__).resolve().parent / "out"
NEXT_PATH = "/api/v1/worklist/next"
# Indexes added by migrations/versions/0003_worklist_indexes.py (``--without-indexes``
# drops them for a "before" run and rebuilds them from the models afterwards).
MIGRATION_0003_INDEXES = ("ix_studies_backlog_order",)
AIM_P95_MS = 25.0
AIM_CLAIMS_PER_SECOND = 300.0


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- servers


# --------------------------------------------------------------------------- users


# --------------------------------------------------------------------------- load runs


# --------------------------------------------------------------------------- claims


def claimed_since(since: datetime) -> set[int]:
    """Study ids claimed at or after ``since`` (by the benchmark)."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        rows = conn.execute("SELECT study_id FROM claims WHERE claimed_at >= %s", (since,))
        return {int(r[0]) for r in rows.fetchall()}


def loaded_claims() -> set[int]:
    """Study ids of the claims that belong to the data set."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        return {int(r[0]) for r in conn.execute("SELECT study_id FROM claims").fetchall()}


def next_available() -> bool:
    """True when the app mounts ``POST /api/v1/worklist/next``."""
    try:
        from worklist.app import create_app

        app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://x"))
        paths = app.openapi().get("paths", {})
    except Exception:  # a half-written module elsewhere: not there yet
        return False
    return "post" in paths.get(NEXT_PATH, {})


def set_caps(cap: int | None) -> dict[str, int]:
    """Set every site's allocation cap to ``cap`` (None: leave them); the caps before."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        before = {
            str(code): int(n) for code, n in conn.execute("SELECT code, allocation_cap FROM sites")
        }
        if cap is not None:
            conn.execute("UPDATE sites SET allocation_cap = %s", (cap,))
    return before


def restore_caps(caps: dict[str, int]) -> None:
    """Put the sites' caps back as ``set_caps`` found them."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        for code, cap in caps.items():
            conn.execute("UPDATE sites SET allocation_cap = %s WHERE code = %s", (cap, code))


def next_claims(
    workdir: Path,
    cluster: ApiCluster,
    radiologists: list[BenchUser],
    *,
    clients: int,
    duration: float,
    keep: set[int],
    cap: int | None = None,
) -> dict[str, Any]:
    """(b) 50 radiologists calling ``/worklist/next`` back to back; double handouts.

    The cap is counted on every call (it is part of the candidate query); ``cap`` sets
    every site's for the phase, so that radiologists taking studies back to back are not
    refused (409) after the first few; None keeps the sites' own.
    """
    templates = [
        {
            "name": "next",
            "method": "POST",
            "path": NEXT_PATH,
            "token": radiologists[k % len(radiologists)].token,
            "client": k,
            "extract": "study.study_uid",
        }
        for k in range(clients)
    ]
    # The database clock decides claimed_at: take "since" from it.
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        since: datetime = row[0]
    caps = set_caps(cap)
    try:
        summary, raw = closed_loop(
            workdir,
            cluster,
            templates,
            clients=clients,
            duration=duration,
            warmup=2.0,
            label="next",
        )
        handed = [uid for uid in raw["extracted"] if uid]
        counts = Counter(handed)
        claimed = claimed_since(since) - keep
        summary["claims_per_second"] = summary["throughput_per_second"]
        summary["handed_out"] = len(handed)
        summary["distinct_studies"] = len(counts)
        summary["double_handouts"] = sum(n - 1 for n in counts.values() if n > 1)
        summary["duplicated_uids"] = [uid for uid, n in counts.items() if n > 1][:20]
        summary["claims_in_database"] = len(claimed)
        summary["no_content_204"] = summary["statuses"].get("204", 0)
        summary["refused_409"] = summary["statuses"].get("409", 0)
        summary["sites_cap"] = cap
    finally:
        restore_caps(caps)
        summary_restored = restore_claims(since, keep)
    summary["restored"] = summary_restored
    return summary


# --------------------------------------------------------------------------- indexes


def _postgres_dialect() -> Dialect:
    dialect: Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return dialect


def index_definitions() -> dict[str, str]:
    """CREATE INDEX statements of migration 0003's indexes, from the models."""
    table = Study.__table__
    assert isinstance(table, Table)
    by_name = {str(index.name): index for index in table.indexes}
    missing = [name for name in MIGRATION_0003_INDEXES if name not in by_name]
    if missing:
        raise BenchError(f"indexes {missing} are not in worklist/models/study.py")
    return {
        str(name): str(CreateIndex(by_name[name]).compile(dialect=_postgres_dialect()))
        for name in MIGRATION_0003_INDEXES
    }


def drop_indexes() -> list[str]:
    """Drop migration 0003's indexes (for a "before" run); the names dropped."""
    dropped = []
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        for name in MIGRATION_0003_INDEXES:
            exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if exists and exists[0] is not None:
                conn.execute(f'DROP INDEX "{name}"')
                dropped.append(name)
    return dropped


def restore_indexes() -> None:
    """Rebuild migration 0003's indexes exactly as the models (and the migration) define them."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        for name, ddl in index_definitions().items():
            exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if not exists or exists[0] is None:
                conn.execute(ddl)
        conn.execute("ANALYZE studies")


def present_indexes() -> list[str]:
    """Migration 0003's indexes present in the benchmark database."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        return [
            name
            for name in MIGRATION_0003_INDEXES
            if (row := conn.execute("SELECT to_regclass(%s)", (name,)).fetchone())
            and row[0] is not None
        ]


# --------------------------------------------------------------------------- plans


def plan_requests(users: list[BenchUser], with_next: bool) -> list[tuple[str, str, str, str]]:
    """The requests whose SQL is explained: the mix for a multi-trust radiologist, more."""
    rng = random.Random(3)
    radiologist = max(
        (u for u in users if u.role == "radiologist"), key=lambda u: len(u.site_codes)
    )
    admin = next(u for u in users if u.role == "admin")
    requests: list[tuple[str, str, str, str]] = []
    for variant in MIX:
        path = variant_query(radiologist, variant, rng)
        if path is not None:
            requests.append(
                (
                    f"{variant} (radiologist, {len(radiologist.site_codes)} trusts)",
                    "GET",
                    path,
                    radiologist.token,
                )
            )
    requests.append(("default (admin, all trusts)", "GET", "/api/v1/worklist", admin.token))
    requests.append(("site (admin)", "GET", "/api/v1/worklist?site=RXK", admin.token))
    if with_next:
        requests.append(("next (radiologist)", "POST", NEXT_PATH, radiologist.token))
    return requests


def explain_all(users: list[BenchUser], secret: str, with_next: bool, keep: set[int]) -> list[Plan]:
    """Capture the API's SQL in-process and EXPLAIN (ANALYZE, BUFFERS) it."""
    settings = Settings(
        database_url=load_studies.database_url(),
        redis_url=REDIS_URL,
        secret_key=secret,
        log_level="WARNING",
    )
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        since: datetime = row[0]
    try:
        return explain_requests(settings, load_studies.conninfo(), plan_requests(users, with_next))
    finally:
        restore_claims(since, keep)


# --------------------------------------------------------------------------- report


def keep_api_logs(workdir: Path, runs: dict[int, dict[str, Any]]) -> Path | None:
    """Copy the API logs to bench/out/ when a phase got 5xx answers (to see why)."""
    failed = any(
        status.startswith("5") and status != "599"
        for run in runs.values()
        for phase in [
            run.get("open_loop"),
            run.get("saturation_get"),
            run.get("saturation_next"),
            *run.get("open_loop_other_rates", {}).values(),
        ]
        if phase
        for status in phase["statuses"]
    )
    if not failed:
        return None
    dest = OUT_DIR / f"worklist-logs-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.rglob("api-*.log"):
        shutil.copy2(log, dest / f"{log.parent.name}-{log.name}")
    return dest


def format_results(runs: dict[int, dict[str, Any]], rate: float) -> str:
    """The results table."""
    lines = [
        f"{'API procs':>9} {'phase':<28} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'errors':>7} {'API ms/req':>10} {'DB ms/req':>9} "
        f"{'PG exited':>9} {'rest CPU':>8}",
    ]
    lines.append("-" * len(lines[0]))
    for count, run in runs.items():
        phases: list[tuple[str, str, dict[str, Any] | None]] = [
            ("open", f"(a) open loop {rate:g}/s", run.get("open_loop"))
        ]
        phases += [
            ("open", f"    open loop {other}/s", summary)
            for other, summary in run.get("open_loop_other_rates", {}).items()
        ]
        phases += [
            ("closed", "(b) GET saturation", run.get("saturation_get")),
            ("closed", "(b) next saturation", run.get("saturation_next")),
        ]
        for mode, label, phase in phases:
            if phase is None:
                continue
            lat = phase["latency_ms"]
            errors = phase["failed"]
            rps = phase["achieved_rate"] if mode == "open" else phase["throughput_per_second"]
            cpu = phase["cpu"]
            lines.append(
                f"{count:>9} {label:<28} {rps:>8.1f} {fmt_ms(lat['p50']):>8} "
                f"{fmt_ms(lat['p95']):>8} {fmt_ms(lat['p99']):>8} {fmt_ms(lat['max']):>8} "
                f"{errors:>7} {cpu.get('api_cpu_ms_per_request', 0):>10.1f} "
                f"{cpu.get('database_cpu_ms_per_request', 0):>9.1f} "
                f"{cpu.get('postgres_exited_processes_cpu_seconds', 0):>8.1f}s "
                f"{cpu['other_cpu_seconds']:>7.1f}s"
            )
    return "\n".join(lines)


def format_kinds(open_loop: dict[str, Any]) -> str:
    """Per request kind latencies of the open-loop run."""
    lines = [f"    {'kind':<12} {'n':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}"]
    for name, stats in open_loop["by_kind"].items():
        lines.append(
            f"    {name:<12} {stats['requests']:>6} {fmt_ms(stats['p50']):>7} "
            f"{fmt_ms(stats['p95']):>7} {fmt_ms(stats['p99']):>7} {fmt_ms(stats['max']):>7}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worklist",
        description="Worklist latency, saturation and next-claims over 1M studies.",
    )
    parser.add_argument("--studies", type=int, default=load_studies.DEFAULT_STUDIES)
    parser.add_argument("--reload", action="store_true", help="rebuild the database")
    parser.add_argument(
        "--api-processes",
        default="1,2",
        help="comma-separated numbers of `worklist api` processes to measure (default 1,2)",
    )
    parser.add_argument(
        "--rate",
        default="200",
        help="open-loop requests/s; a comma-separated list runs each (the first is the aim's)",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="open-loop seconds")
    parser.add_argument("--clients", type=int, default=50, help="saturation clients")
    parser.add_argument("--saturation-seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--skip-next", action="store_true", help="no worklist/next phase")
    parser.add_argument(
        "--next-cap",
        type=int,
        default=1_000_000,
        metavar="N",
        help="every site's allocation cap during the next phase (counted on every call, "
        "never reached by default); a negative value keeps the sites' own",
    )
    parser.add_argument("--skip-explain", action="store_true")
    parser.add_argument(
        "--wait-for-next",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="wait up to MINUTES for POST /api/v1/worklist/next to exist",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="before each round wait up to MINUTES for other work to leave the CPUs idle "
        "(busy < 25%%); 0 = do not wait (default 10)",
    )
    parser.add_argument(
        "--without-indexes",
        action="store_true",
        help="drop migration 0003's indexes for this run (a 'before' run); rebuilt at the end",
    )
    args = parser.parse_args(argv)
    args.process_counts = [int(n) for n in args.api_processes.split(",") if n]
    if args.next_cap < 0:
        args.next_cap = None
    args.rates = [float(r) for r in args.rate.split(",") if r]
    if not args.rates or min(args.rates) <= 0:
        parser.error("--rate must list positive rates")
    if not args.process_counts or min(args.process_counts) < 1:
        parser.error("--api-processes must list positive numbers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    command = shlex.join(
        ["python", "-m", "bench.worklist", *(sys.argv[1:] if argv is None else argv)]
    )
    load_start = os.getloadavg()
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs before the run; "
            "other work on this machine will add noise"
        )
    notes: list[str] = []
    info = load_studies.ensure_loaded(studies=args.studies, reload=args.reload)
    with_next = not args.skip_next and next_available()
    deadline = time.monotonic() + args.wait_for_next * 60
    while not with_next and not args.skip_next and time.monotonic() < deadline:
        print("waiting for POST /api/v1/worklist/next to exist ...", flush=True)
        time.sleep(30)
        with_next = next_available()
    if not with_next and not args.skip_next:
        notes.append("worklist/next not measured: the endpoint does not exist yet")
    dropped: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-worklist-"))
    secret = random_secret()
    runs: dict[int, dict[str, Any]] = {}
    plans: list[Plan] = []
    cluster: ApiCluster | None = None
    logs_kept: Path | None = None
    try:
        if args.without_indexes:
            dropped = drop_indexes()
            with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
                conn.execute("ANALYZE studies")
            print(f"without migration 0003's indexes (dropped: {', '.join(dropped) or 'none'})")
        indexes = present_indexes()
        renewed = load_studies.refresh_claims()
        keep = loaded_claims()
        rng = random.Random(5)
        users = pick_users(rng)
        radiologists = [u for u in users if u.role == "radiologist"]
        for count in args.process_counts:
            print(f"\n== {count} API process(es)", flush=True)
            busy = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
            cluster = ApiCluster(workdir / f"api{count}", count, secret)
            cluster.start()
            log_in(users, cluster.ports[0])
            fetch_cursors(users, cluster.ports[0])
            templates = worklist_templates(users, seed=9)
            run: dict[str, Any] = {"api": cluster.describe(), "machine_busy_before": busy}
            print(f"  warm-up: {args.warmup_seconds:g} s, 8 clients", flush=True)
            closed_loop(
                workdir,
                cluster,
                templates,
                clients=8,
                duration=args.warmup_seconds,
                warmup=0,
                label="warmup",
            )
            # Lowest rate first: an overloaded run leaves work behind in the server.
            for rate in sorted(args.rates):
                settle(cluster, args.quiet_wait)
                print(f"  (a) open loop {rate:g} req/s for {args.duration:g} s", flush=True)
                summary = open_loop(workdir, cluster, templates, rate, args.duration)
                if rate == args.rates[0]:
                    run["open_loop"] = summary
                else:
                    run.setdefault("open_loop_other_rates", {})[f"{rate:g}"] = summary
                lat = summary["latency_ms"]
                print(
                    f"      p50 {fmt_ms(lat['p50'])} ms, p95 {fmt_ms(lat['p95'])} ms, "
                    f"p99 {fmt_ms(lat['p99'])} ms",
                    flush=True,
                )
            settle(cluster, args.quiet_wait)
            print(
                f"  (b) GET saturation: {args.clients} clients, {args.saturation_seconds:g} s",
                flush=True,
            )
            run["saturation_get"], _ = closed_loop(
                workdir,
                cluster,
                templates,
                clients=args.clients,
                duration=args.saturation_seconds,
                warmup=2.0,
                label="get",
            )
            print(f"      {run['saturation_get']['throughput_per_second']:.0f} req/s", flush=True)
            if with_next:
                settle(cluster, args.quiet_wait)
                print(
                    f"  (b) next saturation: {args.clients} radiologists, "
                    f"{args.saturation_seconds:g} s",
                    flush=True,
                )
                run["saturation_next"] = next_claims(
                    workdir,
                    cluster,
                    radiologists,
                    clients=args.clients,
                    duration=args.saturation_seconds,
                    keep=keep,
                    cap=args.next_cap,
                )
                nxt = run["saturation_next"]
                print(
                    f"      {nxt['claims_per_second']:.0f} claims/s, "
                    f"{nxt['double_handouts']} double handouts, "
                    f"{nxt['claims_in_database']} claims in the database "
                    f"({nxt['handed_out']} handed out; restored {nxt['restored']})",
                    flush=True,
                )
            runs[count] = run
            cluster.stop()
            cluster = None
        if not args.skip_explain:
            print("\nEXPLAIN (ANALYZE, BUFFERS) of the API's SQL ...", flush=True)
            plans = explain_all(users, secret, with_next, keep)
    except BenchError as exc:
        REGISTRY.stop_all()
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        keep_dir = OUT_DIR / f"failed-worklist-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
        keep_dir.mkdir(parents=True, exist_ok=True)
        for log in workdir.rglob("*.log"):
            shutil.copy2(log, keep_dir / f"{log.parent.name}-{log.name}")
        print(f"(logs kept in {shown_path(keep_dir)})", file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
        REGISTRY.stop_all()
        if dropped:
            print("rebuilding migration 0003's indexes ...", flush=True)
            restore_indexes()
        logs_kept = keep_api_logs(workdir, runs)
        shutil.rmtree(workdir, ignore_errors=True)

    print("\n" + "=" * 100)
    print(
        f"worklist benchmark: {info.studies:,} studies over {info.sites} trusts "
        f"(backlog: {info.status_counts.get('ready', 0):,} ready, "
        f"{info.status_counts.get('in_progress', 0):,} in progress); loaded with COPY in "
        f"{info.load_seconds:.0f} s{' (reused)' if info.reused else ''}"
    )
    print(f"migration 0003 indexes: {', '.join(indexes) if indexes else 'NONE (before run)'}")
    print()
    print(format_results(runs, args.rates[0]))
    for count, run in runs.items():
        print(f"\n  open loop by kind, {count} API process(es) (ms from scheduled send):")
        print(format_kinds(run["open_loop"]))
        if "saturation_next" in run:
            nxt = run["saturation_next"]
            print(
                f"  next, {count} API process(es): {nxt['claims_per_second']:.0f} claims/s, "
                f"{nxt['handed_out']} handed out, {nxt['distinct_studies']} distinct, "
                f"double handouts: {nxt['double_handouts']}, 204: {nxt['no_content_204']}"
            )
    plans_path: Path | None = None
    if plans:
        print("\nplans (EXPLAIN (ANALYZE, BUFFERS), warm cache):")
        for plan in plans:
            print(f"  {plan.request:<36} {plan.kind:<40} {plan.summary()}")
        for plan in plans:
            if (
                plan.request.startswith("default (radiologist")
                and plan.kind.startswith("select studies")
            ) or "skip locked" in plan.kind:
                print(f"\n  -- {plan.request}: {plan.kind}")
                print("\n".join("     " + line for line in plan.plan.splitlines()))
    best = min(
        (r["open_loop"]["latency_ms"]["p95"] for r in runs.values()),
        default=None,
        key=lambda v: v if v is not None else float("inf"),
    )
    if best is not None:
        print(
            f"\naim p95 < {AIM_P95_MS:g} ms at {args.rates[0]:g} req/s: best {best:.1f} ms "
            f"({'met' if best < AIM_P95_MS else 'NOT met'})"
        )
    claims = [
        r["saturation_next"]["claims_per_second"] for r in runs.values() if "saturation_next" in r
    ]
    if claims:
        print(
            f"aim >= {AIM_CLAIMS_PER_SECOND:g} next-claims/s: best {max(claims):.0f}/s "
            f"({'met' if max(claims) >= AIM_CLAIMS_PER_SECOND else 'NOT met'})"
        )
    if logs_kept is not None:
        print(f"5xx answers: API logs kept in {shown_path(logs_kept)}")
    for note in notes:
        print(f"note: {note}")

    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    out_path = OUT_DIR / f"worklist-{stamp}.json"
    report = {
        "command": command,
        "started": stamp,
        "host": host_info(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "data_set": info.as_dict(),
        "indexes_0003_present": indexes,
        "without_indexes": args.without_indexes,
        "claims_renewed_at_start": renewed,
        "mix": MIX,
        "role_share": ROLE_SHARE,
        "users": [
            {"username": u.username, "role": u.role, "sites": u.site_codes, "q": u.surnames}
            for u in users
        ],
        "runs": {str(count): run for count, run in runs.items()},
        "plans": [plan.as_dict() for plan in plans],
        "notes": notes,
    }
    out_path.write_text(json.dumps(report, indent=2, default=str))
    if plans:
        plans_path = OUT_DIR / f"worklist-{stamp}-plans.txt"
        plans_path.write_text(
            "\n\n".join(
                f"-- {p.request}: {p.kind}\n-- {p.summary()}\n{p.sql}\n-- params: {p.params!r}\n"
                f"{p.plan or p.error}"
                for p in plans
            )
        )
        print(f"plans: {shown_path(plans_path)}")
    print(f"results: {shown_path(out_path)}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        REGISTRY.stop_all()
        print("\ninterrupted; API processes stopped", file=sys.stderr)
        sys.exit(130)
