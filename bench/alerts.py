"""Critical-result alert latency: POST .../alerts -> SSE stream and webhook receiver.

    python -m bench.alerts [--alerts 1000] [--rate 20] [--load-rate 50] [--skip-load]
                           [--skip-control] [--api-processes 2] [--quiet-wait 1]

Real ``worklist api`` processes and a real ``worklist worker`` (webhook dispatcher) on
the worklist benchmark's 1M-study database; trust A's alert client listens on
``/api/v1/alerts/stream`` and trust A's webhook points at a receiver process that
verifies every signature. Phase ``idle``: alerts alone; phase ``load``: the same while
the worklist benchmark's open-loop GET load runs against the same API processes and
database (after a control run of that load alone). See bench/README.md ("Alert delivery
benchmark").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from bench import alert_setup, load_studies
from bench.alert_clients import DbSampler, SentAlert, SseListener, WakeMonitor, raise_alerts
from bench.alert_results import (
    all_received,
    breakdown,
    delivery_check,
    delivery_rows,
    first_arrivals,
    format_breakdown,
    format_table,
    per_alert,
    phase_figures,
    read_receipts,
    wake_figures,
)
from bench.shared import prereqs
from bench.shared.dbcpu import CpuMeter
from bench.shared.procs import (
    REGISTRY,
    BenchError,
    Server,
    free_port,
    group_cpu_seconds,
    install_signal_handlers,
    port_open,
    wait_until,
)
from bench.shared.services import REPO_ROOT, random_secret, worklist_cli
from bench.shared.stats import fmt_ms, host_info, shown_path
from bench.shared.worklist_api import (
    ApiCluster,
    BenchUser,
    closed_loop,
    fetch_cursors,
    log_in,
    open_loop,
    pick_users,
    settle,
    worklist_templates,
)
from worklist.outbox import WAKE_CHANNEL

OUT_DIR = Path(__file__).resolve().parent / "out"
# The benchmark's own Redis database (bench.worklist uses 14, bench.ingest 15, tests 1..n).
# Pub/sub channels are server-wide, not per database: the wake-up channel is shared with
# anything else on this Redis (other processes' wake-ups only cause an empty poll).
REDIS_URL = "redis://127.0.0.1:6379/13"
AIM_P99_MS = 250.0
WARMUP_ALERTS = 20
LOAD_LEAD_IN_SECONDS = 3.0
DRAIN_TIMEOUT_SECONDS = 30.0
DELIVERED_TIMEOUT_SECONDS = 60.0
ALERT_ROUTES = {("post", "/api/v1/studies/{study_uid}/alerts"), ("get", "/api/v1/alerts/stream")}


class AlertsApiCluster(ApiCluster):
    """The worklist benchmark's API processes, on the alert benchmark's Redis database."""

    def env(self, port: int) -> dict[str, str]:
        """One API process's environment."""
        env = super().env(port)
        env["WORKLIST_REDIS_URL"] = REDIS_URL
        env["WORKLIST_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the receiver is on loopback
        return env

    def worker_env(self) -> dict[str, str]:
        """The ``worklist worker`` environment: the API's, without the listening address."""
        env = self.env(0)
        env.pop("WORKLIST_API_HOST")
        env.pop("WORKLIST_API_PORT")
        return env


def missing_pieces() -> list[str]:
    """What of the alert API and the dispatcher is not there yet (empty: ready to run)."""
    missing: list[str] = []
    try:
        from worklist.app import create_app
        from worklist.config import Settings

        app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://x"))
        paths = app.openapi().get("paths", {})
        missing += [
            f"{method.upper()} {path}"
            for method, path in ALERT_ROUTES
            if method not in paths.get(path, {})
        ]
    except Exception as exc:  # a half-written module elsewhere: not there yet
        missing.append(f"the app does not start: {exc!r}")
    dispatcher = REPO_ROOT / "worklist" / "outbox" / "dispatcher.py"
    if "NotImplementedError" in dispatcher.read_text():
        missing.append("worklist/outbox/dispatcher.py (placeholder)")
    return missing


def flush_redis() -> None:
    """Empty the benchmark's Redis database (events stream, rate-limit keys)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


def start_receiver(workdir: Path, port: int, secret: str) -> Server:
    """The webhook receiver process (``bench.alert_receiver``) on ``port``."""
    server = Server(
        "webhook-receiver",
        [sys.executable, "-m", "bench.alert_receiver", str(port)],
        log_path=workdir / "receiver.log",
        env={"WEBHOOK_SECRET": secret},
        cwd=REPO_ROOT,
    )
    wait_until(lambda: port_open(port), timeout=30, what="the webhook receiver", server=server)
    return server


def claim_studies(port: int, token: str, study_uids: list[str]) -> None:
    """The radiologist claims every benchmark study through the API."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for uid in study_uids:
            response = http.post(
                f"/api/v1/studies/{uid}/claim", headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code != 200:
                raise BenchError(f"claim {uid}: {response.status_code} {response.text[:300]}")


def wait_delivered(
    alerts: list[SentAlert], listener: SseListener, receiver_log: Path, timeout: float
) -> None:
    """Wait until every created alert arrived on both channels (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrivals = first_arrivals(listener.snapshot(), read_receipts(receiver_log))
        if all_received(alerts, arrivals):
            return
        time.sleep(0.2)


class Phase:
    """CPU accounting of one alert phase: API, worker, receiver, this process, database."""

    def __init__(self, cluster: ApiCluster, worker: Server, receiver: Server) -> None:
        self.meter = CpuMeter(cluster.pids).start()
        self.api_pids = list(cluster.pids)
        self.api_each = [group_cpu_seconds(pid) for pid in self.api_pids]
        self.worker, self.receiver = worker, receiver
        self.worker_cpu = group_cpu_seconds(worker.pid)
        self.receiver_cpu = group_cpu_seconds(receiver.pid)
        self.self_cpu = _self_cpu()

    def stop(self, loadgen_cpu: float = 0.0) -> dict[str, Any]:
        """CPU seconds of each party since the start."""
        worker = group_cpu_seconds(self.worker.pid) - self.worker_cpu
        receiver = group_cpu_seconds(self.receiver.pid) - self.receiver_cpu
        clients = _self_cpu() - self.self_cpu
        cpu: dict[str, Any] = dict(self.meter.stop(loadgen_cpu + worker + receiver + clients))
        cpu["loadgen_cpu_seconds"] = round(loadgen_cpu, 2)
        cpu["worker_cpu_seconds"] = round(worker, 2)
        cpu["webhook_receiver_cpu_seconds"] = round(receiver, 2)
        cpu["bench_clients_cpu_seconds"] = round(clients, 2)
        # Process 0 holds the SSE stream; the POSTs are spread evenly over all processes.
        cpu["api_cpu_seconds_by_process"] = [
            round(group_cpu_seconds(pid) - before, 2)
            for pid, before in zip(self.api_pids, self.api_each, strict=True)
        ]
        return cpu


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Rig:
    """Everything a phase runs against."""

    args: argparse.Namespace
    cluster: ApiCluster
    worker: Server
    receiver: Server
    listener: SseListener
    wakes: WakeMonitor
    sampler: DbSampler
    trusts: alert_setup.BenchTrusts
    token: str
    workdir: Path


def run_phase(name: str, rig: Rig, templates: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Raise ``args.alerts`` alerts (with the worklist load when ``templates``); the figures."""
    args, cluster, worker, listener = rig.args, rig.cluster, rig.worker, rig.listener
    receiver_log = rig.receiver.log_path
    load: dict[str, Any] = {}
    load_thread: threading.Thread | None = None
    load_error: list[BaseException] = []
    if templates is not None:
        duration = load_seconds(args)

        def run_load() -> None:
            try:
                load.update(open_loop(rig.workdir, cluster, templates, args.load_rate, duration))
            except BaseException as exc:  # reported by the main thread
                load_error.append(exc)

        load_thread = threading.Thread(target=run_load, name="worklist-load", daemon=True)
        print(
            f"  worklist load: open loop {args.load_rate:g} GET/s for {duration:.0f} s", flush=True
        )
        load_thread.start()
        time.sleep(LOAD_LEAD_IN_SECONDS)
    phase = Phase(cluster, worker, rig.receiver)
    started = time.monotonic()
    print(f"  {name}: {args.alerts} alerts at {args.rate:g}/s", flush=True)
    alerts, sender = raise_alerts(
        phase=name,
        count=args.alerts,
        rate=args.rate,
        ports=cluster.ports,
        study_uids=rig.trusts.study_uids,
        token=rig.token,
        category=args.category,
    )
    wait_delivered(alerts, listener, receiver_log, DRAIN_TIMEOUT_SECONDS)
    sessions = rig.sampler.summary(started, time.monotonic())
    if load_thread is not None:
        load_thread.join()
        if load_error:
            raise BenchError(f"the worklist load failed: {load_error[0]!r}")
    cpu = phase.stop(float(load.get("cpu", {}).get("loadgen_cpu_seconds", 0.0)))
    cluster.check_alive()
    if not worker.alive():
        raise BenchError(f"the worker died:\n{worker.log_tail()}")
    sse = listener.snapshot()
    webhooks = read_receipts(receiver_log)
    ids = [a.alert_id for a in alerts if a.alert_id]
    rows = wait_rows_delivered(rig.trusts.site_a_id, ids)
    activity = [] if all(r[2] == "delivered" for r in rows) else database_activity()
    figures = phase_figures(alerts, sse, webhooks)
    result = {
        "database_activity_when_not_delivered": activity,
        "alerts": args.alerts,
        "rate": args.rate,
        "figures": figures,
        "sender": sender,
        "breakdown": breakdown(alerts, rows),
        "deliveries": delivery_check(alerts, rows),
        "wake": wake_figures(alerts, rig.wakes.times),
        "database_sessions": sessions,
        "cpu": cpu,
        "per_alert": per_alert(alerts, sse, webhooks),
    }
    if templates is not None:
        result["worklist_load"] = load
    lat = figures
    print(
        f"      SSE p50 {fmt_ms(lat['sse']['p50'])} / p99 {fmt_ms(lat['sse']['p99'])} ms, "
        f"webhook p50 {fmt_ms(lat['webhook']['p50'])} / p99 {fmt_ms(lat['webhook']['p99'])} ms, "
        f"missing {lat['sse']['missing']} / {lat['webhook']['missing']}",
        flush=True,
    )
    return result


def load_seconds(args: argparse.Namespace) -> float:
    """How long the worklist load of the load phase (and of its control) runs."""
    return LOAD_LEAD_IN_SECONDS + float(args.alerts) / float(args.rate) + 3.0


def run_load_alone(rig: Rig, templates: list[dict[str, Any]]) -> dict[str, Any]:
    """The control: the load phase's worklist load for as long, without alerts."""
    duration = load_seconds(rig.args)
    print(
        f"  control: worklist load alone, {rig.args.load_rate:g} GET/s for {duration:.0f} s",
        flush=True,
    )
    started = time.monotonic()
    summary = open_loop(rig.workdir, rig.cluster, templates, rig.args.load_rate, duration)
    summary["database_sessions"] = rig.sampler.summary(started, time.monotonic())
    lat = summary["latency_ms"]
    print(f"      GET p50 {fmt_ms(lat['p50'])} / p99 {fmt_ms(lat['p99'])} ms", flush=True)
    return summary


def wait_rows_delivered(site_id: int, alert_ids: list[str]) -> list[tuple[Any, ...]]:
    """The deliveries of ``alert_ids``, once all are delivered (or after a timeout)."""
    deadline = time.monotonic() + DELIVERED_TIMEOUT_SECONDS
    while True:
        rows = delivery_rows(site_id, alert_ids)
        if all(r[2] == "delivered" for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


ACTIVITY_SQL = """
SELECT pid, application_name, state, wait_event_type, wait_event,
       round(extract(epoch FROM now() - xact_start)::numeric, 3),
       round(extract(epoch FROM now() - state_change)::numeric, 3), left(query, 300)
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
 ORDER BY xact_start NULLS LAST
"""


def database_activity() -> list[dict[str, Any]]:
    """The benchmark database's sessions now (kept when deliveries are not all delivered)."""
    keys = ("pid", "application", "state", "wait_type", "wait_event", "xact_s", "state_s", "query")
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        return [dict(zip(keys, row, strict=True)) for row in conn.execute(ACTIVITY_SQL)]


def warm_up(
    args: argparse.Namespace,
    cluster: ApiCluster,
    listener: SseListener,
    receiver: Server,
    trusts: alert_setup.BenchTrusts,
    token: str,
) -> None:
    """Raise a few alerts (not counted) and insist they arrive on both channels."""
    alerts, _ = raise_alerts(
        phase="warmup",
        count=WARMUP_ALERTS,
        rate=args.rate,
        ports=cluster.ports,
        study_uids=trusts.study_uids,
        token=token,
        category=args.category,
    )
    failed = [a for a in alerts if a.status != 201]
    if failed:
        raise BenchError(
            f"POST .../alerts failed during warm-up: {failed[0].status} {failed[0].error}"
        )
    wait_delivered(alerts, listener, receiver.log_path, DRAIN_TIMEOUT_SECONDS)
    arrivals = first_arrivals(listener.snapshot(), read_receipts(receiver.log_path))
    for channel in ("sse", "webhook"):
        got = sum(1 for a in alerts if a.alert_id in arrivals[channel])
        if got < len(alerts):
            raise BenchError(
                f"warm-up: {got} of {len(alerts)} alerts arrived on the {channel} channel within "
                f"{DRAIN_TIMEOUT_SECONDS:g} s (SSE errors: {listener.errors[:3]}; receiver log: "
                f"{shown_path(receiver.log_path)})"
            )


def verify(phases: dict[str, dict[str, Any]], receipts: list[dict[str, Any]]) -> list[str]:
    """Everything that must hold; the failures (empty: the run is valid)."""
    failures: list[str] = []
    unverified = [r for r in receipts if not r.get("verified")]
    if unverified:
        failures.append(f"{len(unverified)} webhook requests failed signature verification")
    for name, phase in phases.items():
        figures = phase["figures"]
        if figures["post"]["missing"]:
            failures.append(
                f"{name}: {figures['post']['missing']} POST .../alerts failed "
                f"({figures['post']['statuses']})"
            )
        for channel in ("sse", "webhook"):
            if figures[channel]["missing"]:
                failures.append(
                    f"{name}: {figures[channel]['missing']} alerts never arrived on {channel}"
                )
            check = phase["deliveries"][channel]
            if check["not_delivered"]:
                failures.append(
                    f"{name}: {check['not_delivered']} {channel} deliveries not 'delivered' in "
                    f"the database ({check['by_status']})"
                )
    return failures


def sessions_text(db: dict[str, Any]) -> str:
    """The sampled database sessions of a phase: states and wait events seen in >= 5 %."""
    shown = [
        f"{key.split(':', 1)[1]} mean {v['mean']:.2f} max {v['max']} ({v['share']:.0%})"
        for key, v in db["by_key"].items()
        if v["share"] >= 0.05 and key not in ("state:idle", "wait:Client:ClientRead")
    ]
    return f"database sessions ({db['samples']} samples): " + "; ".join(shown)


def anchor_line(label: str, summary: dict[str, Any] | None) -> str:
    """The worklist GET anchor of a phase."""
    if not summary:
        return f"  {label}: -"
    lat = summary["latency_ms"]
    return (
        f"  {label}: {summary['requests']} GET /api/v1/worklist at {summary['rate']:g}/s: "
        f"p50 {fmt_ms(lat['p50'])} ms, p99 {fmt_ms(lat['p99'])} ms, errors {summary['failed']}"
    )


def ratio_lines(phases: dict[str, dict[str, Any]], anchors: dict[str, Any]) -> list[str]:
    """Alert p99 over the worklist GET p99 of the same phase (comparable across machines)."""
    lines = []
    for name, phase in phases.items():
        anchor = anchors.get(name)
        if not anchor:
            continue
        base = anchor["latency_ms"]
        parts = []
        for channel in ("sse", "webhook"):
            mine = phase["figures"][channel]
            if mine["p50"] and base["p50"] and mine["p99"] and base["p99"]:
                parts.append(
                    f"{channel} p50 {mine['p50'] / base['p50']:.1f}x, "
                    f"p99 {mine['p99'] / base['p99']:.1f}x"
                )
        lines.append(f"  {name}: alert latency / worklist GET latency: " + "; ".join(parts))
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerts",
        description="Latency of critical-result alerts to the SSE stream and the webhook.",
    )
    parser.add_argument("--alerts", type=int, default=1000, help="alerts per phase")
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second (open loop)")
    parser.add_argument(
        "--load-rate", type=float, default=50.0, help="worklist GET/s during the load phase"
    )
    parser.add_argument("--skip-load", action="store_true", help="only the idle phase")
    parser.add_argument(
        "--skip-control",
        action="store_true",
        help="no control run of the worklist load alone before the load phase",
    )
    parser.add_argument("--api-processes", type=int, default=2)
    parser.add_argument("--studies", type=int, default=100, help="trust A studies alerts go to")
    parser.add_argument("--category", default="critical")
    parser.add_argument(
        "--anchor-rate", type=float, default=20.0, help="idle worklist GET anchor: GET/s"
    )
    parser.add_argument("--anchor-seconds", type=float, default=15.0)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=1.0,
        metavar="MINUTES",
        help="before each phase wait up to MINUTES for other work to leave the CPUs idle "
        "(busy < 25%%); 0 = do not wait (default 1)",
    )
    parser.add_argument(
        "--wait-for-api",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="wait up to MINUTES for the alert API and the dispatcher to exist",
    )
    parser.add_argument(
        "--keep-rows", action="store_true", help="leave the benchmark's trusts and alerts in place"
    )
    args = parser.parse_args(argv)
    if args.alerts < 1 or args.rate <= 0 or args.load_rate <= 0 or args.api_processes < 1:
        parser.error("--alerts, --rate, --load-rate and --api-processes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prereqs.require("bench.alerts", [prereqs.STANDARDWEBHOOKS])
    install_signal_handlers()
    command = shlex.join(
        ["python", "-m", "bench.alerts", *(sys.argv[1:] if argv is None else argv)]
    )
    missing = missing_pieces()
    deadline = time.monotonic() + args.wait_for_api * 60
    while missing and time.monotonic() < deadline:
        print(f"waiting for: {', '.join(missing)} ...", flush=True)
        time.sleep(30)
        missing = missing_pieces()
    if missing:
        print(f"BENCHMARK NOT RUN: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    info = load_studies.ensure_loaded()
    leftovers = alert_setup.remove()
    if leftovers:
        print(f"removed rows left by an earlier run: {leftovers}")
    flush_redis()
    audit_after = alert_setup.audit_high_water()
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    secret_key = random_secret()
    cluster: AlertsApiCluster | None = None
    listener: SseListener | None = None
    wakes: WakeMonitor | None = None
    sampler: DbSampler | None = None
    phases: dict[str, dict[str, Any]] = {}
    anchors: dict[str, Any] = {}
    failures: list[str] = []
    receipts: list[dict[str, Any]] = []
    trusts: alert_setup.BenchTrusts | None = None
    removed: dict[str, int] = {}
    api_description: dict[str, Any] | None = None
    try:
        # The worklist load's users are picked before the benchmark's own users exist, so
        # they are the worklist benchmark's very users.
        users = pick_users(random.Random(5))
        load_studies.refresh_claims()
        receiver_port = free_port()
        trusts = alert_setup.create(
            webhook_url=f"http://127.0.0.1:{receiver_port}/hooks",
            studies=args.studies,
            secret_key=secret_key,
        )
        receiver = start_receiver(workdir, receiver_port, trusts.webhook_secret)
        cluster = AlertsApiCluster(workdir / "api", args.api_processes, secret_key)
        cluster.start()
        api_description = cluster.describe()
        worker = Server(
            "worker",
            worklist_cli("worker"),
            log_path=workdir / "worker.log",
            env=cluster.worker_env(),
            cwd=REPO_ROOT,
        )
        radiologist = BenchUser(alert_setup.RADIOLOGIST, "radiologist", [])
        client_user = BenchUser(alert_setup.ALERT_CLIENT, "alert_client", [])
        log_in([radiologist, client_user, *users], cluster.ports[0])
        fetch_cursors(users, cluster.ports[0])
        templates = worklist_templates(users, seed=9)
        claim_studies(cluster.ports[0], radiologist.token, trusts.study_uids)
        wakes = WakeMonitor(REDIS_URL, WAKE_CHANNEL, trusts.site_a_id)
        wakes.start()
        sampler = DbSampler(load_studies.conninfo())
        sampler.start()
        listener = SseListener(f"http://127.0.0.1:{cluster.ports[0]}", client_user.token)
        listener.start()
        if not listener.connected.wait(30) or listener.errors:
            raise BenchError(f"alert stream did not open: {listener.errors[:3]}")
        print("warm-up: worklist 3 s (4 clients), then alerts", flush=True)
        closed_loop(workdir, cluster, templates, clients=4, duration=3.0, warmup=0, label="warmup")
        warm_up(args, cluster, listener, receiver, trusts, radiologist.token)
        settle(cluster, args.quiet_wait)
        print(
            f"anchor: worklist GET at idle, {args.anchor_rate:g}/s for {args.anchor_seconds:g} s",
            flush=True,
        )
        anchors["idle"] = open_loop(
            workdir, cluster, templates, args.anchor_rate, args.anchor_seconds
        )
        rig = Rig(
            args,
            cluster,
            worker,
            receiver,
            listener,
            wakes,
            sampler,
            trusts,
            radiologist.token,
            workdir,
        )
        settle(cluster, args.quiet_wait)
        phases["idle"] = run_phase("idle", rig, templates=None)
        if not args.skip_load:
            if not args.skip_control:
                settle(cluster, args.quiet_wait)
                anchors["load_alone"] = run_load_alone(rig, templates)
            settle(cluster, args.quiet_wait)
            phases["load"] = run_phase("load", rig, templates=templates)
            anchors["load"] = phases["load"]["worklist_load"]
        receipts = read_receipts(receiver.log_path)
        failures = verify(phases, receipts)
    except BenchError as exc:
        REGISTRY.stop_all()
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        keep_dir = OUT_DIR / f"failed-alerts-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
        keep_dir.mkdir(parents=True, exist_ok=True)
        for log in workdir.rglob("*.log"):
            shutil.copy2(log, keep_dir / f"{log.parent.name}-{log.name}")
        print(f"(logs kept in {shown_path(keep_dir)})", file=sys.stderr)
        return 1
    finally:
        if listener is not None:
            listener.stop()
        if wakes is not None:
            wakes.stop()
        if sampler is not None:
            sampler.stop()
        if cluster is not None:
            cluster.stop()
        REGISTRY.stop_all()
        if not args.keep_rows:
            removed = alert_setup.remove(audit_after)
            alert_setup.vacuum_touched()
        flush_redis()
        if failures:
            keep_dir = OUT_DIR / f"failed-alerts-{datetime.now().strftime('%Y%m%dT%H%M%S')}"
            keep_dir.mkdir(parents=True, exist_ok=True)
            for log in workdir.rglob("*.log"):
                shutil.copy2(log, keep_dir / f"{log.parent.name}-{log.name}")
        shutil.rmtree(workdir, ignore_errors=True)

    print("\n" + "=" * 96)
    print(
        f"alert delivery: {args.alerts} alerts per phase at {args.rate:g}/s (open loop), "
        f"{args.api_processes} API process(es) + 1 worker; worklist load {args.load_rate:g} GET/s "
        f"over {info.studies:,} studies"
    )
    print()
    print(format_table(phases))
    print("\nworklist GET anchor, measured in the same run:")
    print(anchor_line("idle", anchors.get("idle")))
    if "load_alone" in anchors:
        print(anchor_line("load alone, no alerts (control)", anchors.get("load_alone")))
    if "load" in anchors:
        print(anchor_line("load, with the alerts", anchors.get("load")))
    for line in ratio_lines(phases, anchors):
        print(line)
    print("\nwhere the time goes:")
    print(format_breakdown(phases))
    for name, phase in phases.items():
        checks = phase["deliveries"]
        print(
            f"  {name}: deliveries in the database: webhook {checks['webhook']['by_status']} "
            f"({checks['webhook']['retried']} retried), sse {checks['sse']['by_status']}; "
            f"sender max dispatch lag {phase['sender']['max_dispatch_lag_ms']:.1f} ms; "
            f"SSE connects {listener.connects if listener else 0}"
        )
    sampled = {name: phase["database_sessions"] for name, phase in phases.items()}
    if "load_alone" in anchors:
        sampled["control"] = anchors["load_alone"]["database_sessions"]
    for name, db in sampled.items():
        if db.get("samples"):
            print(f"  {name}: {sessions_text(db)}")
    for name, phase in phases.items():
        worst = max(
            phase["figures"]["sse"]["p99"] or 0.0, phase["figures"]["webhook"]["p99"] or 0.0
        )
        print(
            f"aim p99 < {AIM_P99_MS:g} ms ({name}): worst channel {worst:.1f} ms "
            f"({'met' if worst < AIM_P99_MS else 'NOT met'})"
        )
    OUT_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    out_path = OUT_DIR / f"alerts-{stamp}.json"
    report = {
        "command": command,
        "started": stamp,
        "host": host_info(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "data_set": info.as_dict(),
        "config": {
            "alerts": args.alerts,
            "rate": args.rate,
            "load_rate": args.load_rate,
            "api": api_description,
            "worker": "python -m worklist worker (jobs + webhook dispatcher), same environment",
            "redis": REDIS_URL,
            "category": args.category,
            "trusts": trusts.describe() if trusts else None,
        },
        "anchors": anchors,
        "phases": phases,
        "sse": {
            "connects": listener.connects if listener else 0,
            "errors": listener.errors if listener else [],
        },
        "webhook_requests": len(receipts),
        "failures": failures,
        "removed_rows": removed,
    }
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(f"results: {shown_path(out_path)}")
    print(f"reproduce: {command}")
    if failures:
        print("\nBENCHMARK FAILED verification:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        REGISTRY.stop_all()
        print("\ninterrupted; processes stopped", file=sys.stderr)
        sys.exit(130)
