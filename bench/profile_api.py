"""CPU per request of the worklist API, in-process, one kind at a time (where the time goes).

``python -m bench.profile_api`` builds the app with ``create_app`` (the code and settings of
``worklist api``) over the 1M-study ``bench_worklist`` database, logs the benchmark's users
in through the real login, then sends each request kind of the worklist mix (and ``next``
claims) one after another over an ASGI transport. For every kind it reports the API's CPU
per request (this process: app and the in-process client, no HTTP parsing) and the CPU of
the database backends serving it. ``--profile DIR`` also writes a cProfile of each kind
(``DIR/<kind>.pstats``; read with ``python -m pstats`` or ``snakeviz``).

It complements ``bench.worklist`` (real processes, open loop, latency): this one is quiet,
single-threaded and repeatable, to see what a change saves per request.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import load_studies
from bench.shared.dbcpu import database_cpu
from bench.shared.worklist_api import MIX, BenchUser, pick_users, variant_query
from worklist.app import create_app
from worklist.config import Settings

NEXT = "next"


def _settings(tmp: Path) -> Settings:
    return Settings(
        database_url=load_studies.database_url(),
        redis_url="redis://127.0.0.1:6379/14",
        data_dir=tmp,
        secret_key=secrets.token_urlsafe(48),
        log_level="WARNING",
        login_max_attempts_per_address=100000,
    )


async def _log_in(http: httpx.AsyncClient, users: list[BenchUser]) -> None:
    for user in users:
        response = await http.post(
            "/api/v1/auth/token",
            data={"username": user.username, "password": load_studies.BENCH_PASSWORD},
        )
        response.raise_for_status()
        user.token = response.json()["access_token"]
        first = await http.get(
            "/api/v1/worklist", headers={"Authorization": f"Bearer {user.token}"}
        )
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


async def _measure(
    http: httpx.AsyncClient,
    requests: list[tuple[str, str, str]],
    profile_to: Path | None,
    kind: str,
) -> dict[str, Any]:
    database = load_studies.DB_NAME
    profiler = cProfile.Profile() if profile_to else None
    claimed: list[str] = []
    db_before = database_cpu(database)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for method, path, token in requests:
        response = await http.request(method, path, headers={"Authorization": f"Bearer {token}"})
        if response.status_code >= 400:
            raise RuntimeError(f"{kind}: {method} {path} -> {response.status_code}")
        if method == "POST" and response.status_code == 200:
            claimed.append(response.json()["claim"]["study_uid"])
    if profiler and profile_to:
        profiler.disable()
        profiler.dump_stats(profile_to / f"{kind}.pstats")
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    db_after = database_cpu(database)
    db = sum(v - db_before.get(pid, 0.0) for pid, v in db_after.items())
    if claimed:
        _reset_claims(claimed)
    n = len(requests)
    return {
        "requests": n,
        "api_cpu_ms": round(1000 * cpu / n, 3),
        "db_cpu_ms": round(1000 * db / n, 3),
        "wall_ms": round(1000 * wall / n, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure each kind; return {kind: figures}."""
    tmp = Path(args.workdir)
    tmp.mkdir(parents=True, exist_ok=True)
    app = create_app(_settings(tmp))
    rng = random.Random(11)
    users = pick_users(rng)
    profile_to = Path(args.profile) if args.profile else None
    if profile_to:
        profile_to.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as http,
    ):
        await _log_in(http, users)
        radiologists = [u for u in users if u.role == "radiologist"]
        kinds = [k for k in [*MIX, NEXT] if not args.only or k in args.only.split(",")]
        for kind in kinds:
            requests: list[tuple[str, str, str]] = []
            for i in range(args.requests):
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
            await _measure(http, requests[: max(5, args.requests // 10)], None, kind)  # warm
            results[kind] = await _measure(http, requests, profile_to, kind)
            print(kind, json.dumps(results[kind]), flush=True)
    return results


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per kind")
    parser.add_argument("--only", default="", help="comma-separated kinds")
    parser.add_argument("--profile", default="", help="write cProfile stats to this directory")
    parser.add_argument("--workdir", default=os.path.join("/tmp", "bench-profile-api"))
    results = asyncio.run(run(parser.parse_args()))
    gets = [v for k, v in results.items() if k != NEXT]
    if gets:
        weights = [MIX[k] for k in results if k != NEXT]
        total = sum(weights)
        api = sum(w * v["api_cpu_ms"] for w, v in zip(weights, gets, strict=True)) / total
        db = sum(w * v["db_cpu_ms"] for w, v in zip(weights, gets, strict=True)) / total
        print(f"GET mix (weighted): api {api:.2f} ms + db {db:.2f} ms CPU per request")


if __name__ == "__main__":
    main()
