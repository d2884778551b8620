"""HL7 orders in: a RIS replaying its backlog of ORM^O01 over ONE MLLP connection.

    python -m bench.hl7 [--messages 5000] [--warmup 200] [--redis-url URL] [--profile]

A real ``worklist hl7`` process on a private database (``bench_hl7``, recreated) with
one registered site; each message is sent when the previous one's ACK has arrived, as a
RIS does (the ACK comes after the commit). Every tenth message changes an earlier order
(XO, new priority); the rest are new orders. Reported: messages/s, ACK latency
percentiles, and CPU per message of the hl7 process and of its PostgreSQL backends. See
bench/README.md ("HL7 orders benchmark").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from hl7.mllp import open_hl7_connection

from bench.shared.dbcpu import CpuMeter
from bench.shared.procs import (
    REGISTRY,
    BenchError,
    Server,
    free_port,
    install_signal_handlers,
    port_open,
    run_checked,
    wait_until,
)
from bench.shared.services import (
    REPO_ROOT,
    pg_admin_conninfo,
    random_secret,
    recreate_database,
    worklist_cli,
)
from bench.shared.stats import fmt_ms, host_info, percentiles, shown_path
from worklist.identity import make_nhs_number

OUT_DIR = Path(__file__).resolve().parent / "out"
DATABASE = "bench_hl7"
# Redis db of this benchmark (ingest 15, worklist 14, alerts 13, retrieve 12, qido 11).
REDIS_URL = "redis://127.0.0.1:6379/10"
SITE, FACILITY = "RXA", "RXA_RIS"
TARGET_PER_SECOND = 300
CHANGE_EVERY = 10
PRIORITIES = ("R", "R", "R", "A", "S")
ACK_ACCEPTED = b"MSA|AA|"


def order_message(index: int) -> bytes:
    """The ``index``-th message of the replay: a new order, or every tenth a change."""
    change = index % CHANGE_EVERY == CHANGE_EVERY - 1
    accession = index - CHANGE_EVERY // 2 if change else index
    control, priority = ("XO", "S") if change else ("NW", PRIORITIES[index % len(PRIORITIES)])
    segments = [
        f"MSH|^~\\&|CRIS|{FACILITY}|WORKLIST|IMAGING_NET|20260105101500||ORM^O01^ORM_O01|"
        f"B{index:08d}|P|2.4|||AL|NE",
        f"PID|1||H{accession:07d}^^^RXA^MR~{make_nhs_number(accession)}^^^NHS^NH||"
        f"PATIENT^TEST{accession}||19700101|F",
        "PV1|1|O|XRAY^^^RXA",
        f"ORC|{control}|P{accession:08d}|F{accession:08d}||SC||||20260105101000|||"
        "C1234567^JONES^PETER^^^DR|||||||||Riverside Surgery^^^^^^^^^A81001",
        f"OBR|1|P{accession:08d}|F{accession:08d}|XCHES^XR Chest^NICIP||20260105100000|||||||"
        f"Cough for 6 weeks|||||A{accession:08d}|||||||||^^^^^{priority}||||^Query infection",
    ]
    return ("\r".join(segments) + "\r").encode()


async def replay(port: int, messages: list[bytes]) -> tuple[list[float], float]:
    """Send each message, await its ACK; the ACK latencies and the wall time (seconds)."""
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    latencies: list[float] = []
    began = time.perf_counter()
    try:
        for data in messages:
            started = time.perf_counter()
            writer.writeblock(data)
            await writer.drain()
            ack = await asyncio.wait_for(reader.readblock(), 30)
            latencies.append(time.perf_counter() - started)
            if ACK_ACCEPTED not in ack:
                raise BenchError(f"not accepted: {ack[:200]!r}")
    finally:
        writer.close()
        await writer.wait_closed()
    return latencies, time.perf_counter() - began


def stored_counts() -> tuple[int, int]:
    """Orders and recorded messages in the benchmark's database."""
    with psycopg.connect(pg_admin_conninfo(DATABASE)) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()
        messages = conn.execute("SELECT count(*) FROM hl7_messages").fetchone()
    return (int(orders[0]) if orders else 0, int(messages[0]) if messages else 0)


def start_listener(workdir: Path, env: dict[str, str]) -> tuple[Server, int]:
    """``worklist hl7`` on a free port, once it listens."""
    port = free_port()
    server = Server(
        "worklist-hl7",
        worklist_cli("hl7"),
        log_path=workdir / "hl7.log",
        env={**env, "WORKLIST_HL7_PORT": str(port)},
        cwd=REPO_ROOT,
    )
    wait_until(lambda: port_open(port), timeout=60, what="worklist hl7", server=server)
    return server, port


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy recording the hl7 process for ``seconds`` (None without py-spy)."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: no profile (python -m pip install py-spy)")
        return None
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds) + 1)]
    argv += ["--format", "speedscope", "--output", str(out), "--rate", "250", "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def figures(
    latencies: list[float], wall: float, cpu: dict[str, float], count: int
) -> dict[str, Any]:
    """The reported numbers of the measured phase."""
    per_ms = {key: value * 1000 / count for key, value in cpu.items() if key.endswith("seconds")}
    return {
        "messages": count,
        "messages_per_second": round(count / wall, 1),
        "ack_latency_ms": {k: v and round(v * 1000, 2) for k, v in percentiles(latencies).items()},
        "cpu_ms_per_message": {
            "hl7_process": round(per_ms["api_cpu_seconds"], 3),
            "postgres_backends": round(per_ms["database_cpu_seconds"], 3),
            "client": round(per_ms["loadgen_cpu_seconds"], 3),
        },
        "cpu": cpu,
    }


def format_table(result: dict[str, Any]) -> str:
    """The human-readable summary."""
    latency, cpu = result["ack_latency_ms"], result["cpu_ms_per_message"]
    verdict = "meets" if result["messages_per_second"] >= TARGET_PER_SECOND else "MISSES"
    return "\n".join(
        [
            f"{result['messages']} ORM^O01 over one MLLP connection, each after the last ACK",
            f"  throughput  {result['messages_per_second']:.0f} messages/s "
            f"({verdict} the {TARGET_PER_SECOND}/s target)",
            f"  ACK latency p50 {fmt_ms(latency['p50'])} ms, p95 {fmt_ms(latency['p95'])} ms, "
            f"p99 {fmt_ms(latency['p99'])} ms, max {fmt_ms(latency['max'])} ms",
            f"  CPU/message hl7 process {cpu['hl7_process']:.2f} ms, PostgreSQL backends "
            f"{cpu['postgres_backends']:.2f} ms, client {cpu['client']:.2f} ms",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hl7", description="ORM^O01 replay over one MLLP connection."
    )
    parser.add_argument("--messages", type=int, default=5000, help="measured messages")
    parser.add_argument("--warmup", type=int, default=200, help="messages sent first, uncounted")
    parser.add_argument("--redis-url", default=REDIS_URL, help="its database is written to")
    parser.add_argument("--profile", action="store_true", help="py-spy the hl7 process")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.warmup < 0:
        parser.error("--messages must be positive and --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    command = shlex.join(["python", "-m", "bench.hl7", *(sys.argv[1:] if argv is None else argv)])
    workdir = Path(tempfile.mkdtemp(prefix="bench-hl7-"))
    env = {
        "WORKLIST_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}",
        "WORKLIST_REDIS_URL": args.redis_url,
        "WORKLIST_SECRET_KEY": random_secret(),
        "WORKLIST_DATA_DIR": str(workdir / "var"),
        "WORKLIST_LOG_LEVEL": "INFO",
    }
    total = args.warmup + args.messages
    messages = [order_message(i) for i in range(total)]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    spy: subprocess.Popen[bytes] | None = None
    try:
        recreate_database(DATABASE)
        run_checked(worklist_cli("migrate"), env=env)
        run_checked(
            worklist_cli(
                "site", "add", SITE, "--name", "Bench Trust", "--ae-title", "RXA_PACS",
                "--hl7-facility", FACILITY,
            ),
            env=env,
        )  # fmt: skip
        server, port = start_listener(workdir, env)
        print(f"warm-up: {args.warmup} messages ...", flush=True)
        asyncio.run(replay(port, messages[: args.warmup]))
        meter = CpuMeter(api_pids=[server.pid], database=DATABASE).start()
        client_before = time.process_time()
        if args.profile:
            spy = profile(server.pid, args.messages / 200, OUT_DIR / f"hl7-{stamp}.speedscope")
        print(f"measuring: {args.messages} messages ...", flush=True)
        latencies, wall = asyncio.run(replay(port, messages[args.warmup :]))
        cpu = meter.stop(loadgen_cpu=time.process_time() - client_before)
        orders, recorded = stored_counts()
        expected = sum(1 for i in range(total) if i % CHANGE_EVERY != CHANGE_EVERY - 1)
        if (orders, recorded) != (expected, total):
            raise BenchError(f"stored {orders} orders / {recorded} messages, expected "
                             f"{expected} / {total}")  # fmt: skip
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if spy is not None:
            spy.wait(120)
        REGISTRY.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    result = figures(latencies, wall, cpu, args.messages)
    print()
    print(format_table(result))
    out = OUT_DIR / f"hl7-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "command": command,
                "host": host_info(),
                "load_average_end": os.getloadavg(),
                "when_unix": time.time(),
                "warmup": args.warmup,
                "result": result,
            },
            indent=2,
        )
    )
    print(f"\nresults: {shown_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
