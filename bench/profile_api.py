"""CPU per request of the worklist API, one request at a time, one kind at a time.

``python -m bench.profile_api`` starts one ``worklist api`` process (as ``bench.worklist``
does) over the 1M-study ``bench_worklist`` database, logs the benchmark's users in through
the real login, then sends each request kind of the worklist mix (and ``next`` claims) one
after another from one keep-alive client. For every kind it reports the CPU per request of
the API process and of the database backends serving it (from ``/proc``, so the client's
own CPU is not counted), and the wall time per request.

It complements ``bench.worklist`` (open loop, latency, saturation): with one request in
flight there is no queueing, so it shows what a change saves per request even on a busy
machine. To see where the API's time goes, run ``py-spy record --pid <api pid>`` meanwhile.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import load_studies
from bench.shared.dbcpu import database_cpu
from bench.shared.procs import group_cpu_seconds
from bench.shared.worklist_api import (
    MIX,
    ApiCluster,
    BenchUser,
    pick_users,
    restore_claims,
    variant_query,
)

NEXT = "next"


def _log_in(http: httpx.Client, users: list[BenchUser]) -> None:
    for user in users:
        response = http.post(
            "/api/v1/auth/token",
            data={"username": user.username, "password": load_studies.BENCH_PASSWORD},
        )
        response.raise_for_status()
        user.token = response.json()["access_token"]
        first = http.get("/api/v1/worklist", headers={"Authorization": f"Bearer {user.token}"})
        first.raise_for_status()
        user.cursor = first.json().get("next_cursor")


def _reset_claims(claimed: list[str]) -> None:
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        conn.execute(
            "DELETE FROM claims c USING studies s WHERE c.study_id = s.id "
            "AND s.study_uid = ANY(%s)",
            (claimed,),
        )
        conn.execute("UPDATE studies SET status = 'ready' WHERE study_uid = ANY(%s)", (claimed,))


def _measure(
    http: httpx.Client, api_pid: int, requests: list[tuple[str, str, str]], kind: str
) -> dict[str, Any]:
    claimed: list[str] = []
    db_before = database_cpu(load_studies.DB_NAME)
    api_before, wall_before = group_cpu_seconds(api_pid), time.perf_counter()
    for method, path, token in requests:
        response = http.request(method, path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code >= 400:
            raise RuntimeError(f"{kind}: {method} {path} -> {response.status_code}")
        if method == "POST" and response.status_code == 200:
            claimed.append(response.json()["claim"]["study_uid"])
    api, wall = group_cpu_seconds(api_pid) - api_before, time.perf_counter() - wall_before
    db_after = database_cpu(load_studies.DB_NAME)
    db = sum(v - db_before.get(pid, 0.0) for pid, v in db_after.items())
    if claimed:
        _reset_claims(claimed)
    n = len(requests)
    return {
        "requests": n,
        "api_cpu_ms": round(1000 * api / n, 3),
        "db_cpu_ms": round(1000 * db / n, 3),
        "wall_ms": round(1000 * wall / n, 3),
    }


def _requests(
    kind: str, count: int, users: list[BenchUser], rng: random.Random
) -> list[tuple[str, str, str]]:
    radiologists = [u for u in users if u.role == "radiologist"]
    requests: list[tuple[str, str, str]] = []
    for i in range(count):
        if kind == NEXT:
            user = radiologists[i % len(radiologists)]
            requests.append(("POST", "/api/v1/worklist/next", user.token))
            continue
        while True:
            user = users[rng.randrange(len(users))]
            path = variant_query(user, kind, rng)
            if path is not None:
                break
        requests.append(("GET", path, user.token))
    return requests


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure each kind; return {kind: figures}."""
    cluster = ApiCluster(Path(args.workdir), 1, secrets.token_urlsafe(48))
    rng = random.Random(11)
    users = pick_users(rng)
    results: dict[str, Any] = {}
    # The database as it was, the claims ``next`` makes undone after: left behind, they
    # would lengthen every later pick's walk past held studies (bench/README.md).
    since = datetime.now(UTC)
    cluster.start()
    try:
        api_pid = cluster.pids[0]
        print(f"api pid {api_pid}", flush=True)
        with httpx.Client(base_url=f"http://127.0.0.1:{cluster.ports[0]}", timeout=30) as http:
            _log_in(http, users)
            kinds = [k for k in [*MIX, NEXT] if not args.only or k in args.only.split(",")]
            for kind in kinds:
                requests = _requests(kind, args.requests, users, rng)
                _measure(http, api_pid, requests[: max(5, args.requests // 10)], kind)  # warm
                results[kind] = _measure(http, api_pid, requests, kind)
                print(kind, json.dumps(results[kind]), flush=True)
    finally:
        cluster.stop()
        restore_claims(since, keep=set())
    return results


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per kind")
    parser.add_argument("--only", default="", help="comma-separated kinds")
    parser.add_argument("--workdir", default="/tmp/bench-profile-api")
    results = run(parser.parse_args())
    gets = [v for k, v in results.items() if k != NEXT]
    if gets:
        weights = [MIX[k] for k in results if k != NEXT]
        total = sum(weights)
        api = sum(w * v["api_cpu_ms"] for w, v in zip(weights, gets, strict=True)) / total
        db = sum(w * v["db_cpu_ms"] for w, v in zip(weights, gets, strict=True)) / total
        print(f"GET mix (weighted): api {api:.2f} ms + db {db:.2f} ms CPU per request")


if __name__ == "__main__":
    main()
