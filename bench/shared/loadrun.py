"""Runs of the HTTP load generator (``bench.loadgen``, its own process) and their figures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.shared.procs import BenchError
from bench.shared.services import REPO_ROOT
from bench.shared.stats import percentiles


def run_loadgen(workdir: Path, plan: dict[str, Any], label: str) -> dict[str, Any]:
    """Run ``python -m bench.loadgen`` as its own process; its results."""
    plan_path = workdir / f"plan-{label}.json"
    out_path = workdir / f"result-{label}.json"
    plan_path.write_text(json.dumps(plan))
    timeout = float(plan["duration"]) + float(plan.get("warmup", 0)) + 120
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", str(plan_path), str(out_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise BenchError(f"load generator still running after {timeout:.0f} s") from exc
    except BaseException:
        # Ctrl-C or a timeout: the generator must stop before claims are restored.
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0 or not out_path.exists():
        raise BenchError(f"load generator failed ({proc.returncode}):\n{stderr[-3000:]}")
    data: dict[str, Any] = json.loads(out_path.read_text())
    return data


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Percentiles overall and per request kind, statuses, errors."""
    every = [v for values in result["latencies"].values() for v in values]
    statuses: Counter[str] = Counter()
    for by_status in result["statuses"].values():
        statuses.update(by_status)
    ok = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "requests": len(every),
        "ok": ok,
        "failed": sum(n for s, n in statuses.items() if not s.startswith("2")),
        "answered": sum(n for s, n in statuses.items() if s != "unfinished"),
        "statuses": dict(statuses),
        "errors": result["errors"],
        "unfinished": result["unfinished"],
        "latency_ms": percentiles(every),
        "by_kind": {
            name: {"requests": len(values), **percentiles(values)}
            for name, values in sorted(result["latencies"].items())
        },
        "service_ms": percentiles([v for vs in result["service"].values() for v in vs]),
        "connections_opened": result["connections_opened"],
        "max_in_flight": result["max_in_flight"],
        "max_dispatch_lag_ms": result["max_dispatch_lag_ms"],
        "window_seconds": result["window_seconds"],
        "counted": result["counted"],
        "throughput_per_second": result["counted"] / result["window_seconds"]
        if result["window_seconds"]
        else None,
    }


def per_request(cpu: dict[str, float], answered: int) -> dict[str, float]:
    """Add the API's and the database's CPU milliseconds per answered request."""
    if answered:
        cpu["api_cpu_ms_per_request"] = round(cpu["api_cpu_seconds"] * 1000 / answered, 2)
        cpu["database_cpu_ms_per_request"] = round(cpu["database_cpu_seconds"] * 1000 / answered, 2)
    return cpu
