"""The worklist API under load: the ``worklist api`` processes, the benchmark users, the GET mix.

Shared by ``bench.worklist`` and ``bench.alerts`` (which loads the same API with the same
users and mix while it measures alert delivery).
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from bench import load_studies
from bench.shared.dbcpu import CpuMeter
from bench.shared.loadrun import per_request, run_loadgen, summarise
from bench.shared.procs import BenchError, Server, free_port, wait_until
from bench.shared.services import REPO_ROOT, worklist_cli
from bench.shared.stats import wait_for_quiet

REDIS_URL = "redis://127.0.0.1:6379/14"
RADIOLOGIST_USERS = 60
# The open-loop mix: share of requests per kind (see bench/README.md).
MIX: dict[str, float] = {
    "default": 0.40,
    "site": 0.15,
    "ready_ct": 0.10,
    "stat_urgent": 0.10,
    "mine": 0.10,
    "page2": 0.10,
    "q_surname": 0.05,
}
# Share of the traffic by role (each user of a role sends the same share).
ROLE_SHARE = {"radiologist": 0.95, "manager": 0.03, "admin": 0.02}


def _healthy(port: int) -> bool:
    """True when the API on ``port`` answers /healthz."""
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200


class ApiCluster:
    """``count`` independent ``worklist api`` processes on their own ports (no balancer)."""

    def __init__(self, workdir: Path, count: int, secret: str) -> None:
        self.workdir = workdir
        self.count = count
        self.secret = secret
        self.servers: list[Server] = []
        self.ports: list[int] = []

    def env(self, port: int) -> dict[str, str]:
        """One API process's environment."""
        return {
            "WORKLIST_DATABASE_URL": load_studies.database_url(),
            "WORKLIST_REDIS_URL": REDIS_URL,
            "WORKLIST_SECRET_KEY": self.secret,
            "WORKLIST_DATA_DIR": str(self.workdir / "data"),
            "WORKLIST_API_HOST": "127.0.0.1",
            "WORKLIST_API_PORT": str(port),
            "WORKLIST_LOG_LEVEL": "WARNING",
            # The benchmark logs ~60 users in from one address within seconds.
            "WORKLIST_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "100000",
        }

    def describe(self) -> dict[str, Any]:
        """How the API runs (recorded in the JSON output)."""
        env = self.env(0)
        env["WORKLIST_SECRET_KEY"] = "<random, 48 characters>"
        env["WORKLIST_API_PORT"] = "<a free port per process>"
        return {
            "program": "python -m worklist api (uvicorn, one process each, no balancer)",
            "processes": self.count,
            "ports": self.ports,
            "env": env,
            "client_spread": "open loop: request i to port i mod N; closed: client k to k mod N",
            "database_pool": "per process: SQLAlchemy pool_size 10 + max_overflow 10",
        }

    def start(self) -> None:
        """Start every process and wait for /healthz."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            port = free_port()
            server = Server(
                f"api-{index}",
                worklist_cli("api"),
                log_path=self.workdir / f"api-{index}.log",
                env=self.env(port),
                cwd=REPO_ROOT,
            )
            self.servers.append(server)
            self.ports.append(port)
        for server, port in zip(self.servers, self.ports, strict=True):
            wait_until(
                functools.partial(_healthy, port),
                timeout=60,
                what=f"{server.name}'s /healthz",
                server=server,
            )

    @property
    def pids(self) -> list[int]:
        """Process group ids of the API processes."""
        return [server.pid for server in self.servers]

    def check_alive(self) -> None:
        """Fail if an API process died."""
        for server in self.servers:
            if not server.alive():
                raise BenchError(f"{server.name} died:\n{server.log_tail()}")

    def stop(self) -> None:
        """Stop every process."""
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self.ports.clear()


def settle(cluster: ApiCluster, quiet_wait: float, timeout: float = 60.0) -> None:
    """Before a phase: wait until every API process answers /healthz quickly (left-over
    work is done), then (up to ``quiet_wait`` minutes) until other work is quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.perf_counter()
        for port in cluster.ports:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        if time.perf_counter() - started < 0.05 * len(cluster.ports):
            break
        time.sleep(1)
    time.sleep(1)
    if quiet_wait > 0:
        wait_for_quiet(quiet_wait)


@dataclass
class BenchUser:
    """A user the load generator acts as."""

    username: str
    role: str
    site_codes: list[str]
    token: str = ""
    surnames: list[str] = field(default_factory=list)
    cursor: str | None = None


def pick_users(rng: random.Random) -> list[BenchUser]:
    """60 radiologists (1-3 trusts each), two managers and the admin."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT u.username, u.role::text, coalesce(array_agg(s.code ORDER BY s.code) "
            "FILTER (WHERE s.code IS NOT NULL), '{}') FROM users u "
            "LEFT JOIN user_sites us ON us.user_id = u.id LEFT JOIN sites s ON s.id = us.site_id "
            "WHERE u.role IN ('radiologist', 'manager', 'admin') GROUP BY u.id ORDER BY u.id"
        ).fetchall()
        users = [BenchUser(str(r[0]), str(r[1]), list(r[2])) for r in rows]
        radiologists = [u for u in users if u.role == "radiologist"]
        managers = [u for u in users if u.role == "manager"]
        admins = [u for u in users if u.role == "admin"]
        chosen = (
            rng.sample(radiologists, min(RADIOLOGIST_USERS, len(radiologists)))
            + rng.sample(managers, min(2, len(managers)))
            + admins[:1]
        )
        all_codes = sorted({c for u in users for c in u.site_codes})
        for user in chosen:
            codes = user.site_codes or all_codes
            # Surnames of patients on the user's backlog: what a radiologist looks up.
            # A hash of (user, study) orders them: the same picks in every run.
            user.surnames = [
                str(r[0])
                for r in conn.execute(
                    "SELECT split_part(p.name, '^', 1) FROM studies s "
                    "JOIN patients p ON p.id = s.patient_id JOIN sites t ON t.id = s.site_id "
                    "WHERE s.status = 'ready' AND t.code = ANY(%s) "
                    "ORDER BY hashtext(%s || s.study_uid), s.id LIMIT 3",
                    (codes, user.username),
                ).fetchall()
            ]
    return chosen


def log_in(users: list[BenchUser], port: int) -> None:
    """Get each user's token from ``POST /api/v1/auth/token`` (the real login)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for user in users:
            response = http.post(
                "/api/v1/auth/token",
                data={"username": user.username, "password": load_studies.BENCH_PASSWORD},
            )
            if response.status_code != 200:
                raise BenchError(f"login {user.username}: {response.status_code} {response.text}")
            user.token = response.json()["access_token"]


def fetch_cursors(users: list[BenchUser], port: int) -> None:
    """The second-page cursor of each user's default worklist."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for user in users:
            response = http.get(
                "/api/v1/worklist", headers={"Authorization": f"Bearer {user.token}"}
            )
            if response.status_code != 200:
                raise BenchError(f"worklist for {user.username}: {response.status_code}")
            user.cursor = response.json().get("next_cursor")


def variant_query(user: BenchUser, variant: str, rng: random.Random) -> str | None:
    """The query string of one request kind for ``user`` (None: not applicable)."""
    params: list[tuple[str, str]]
    if variant == "default":
        params = []
    elif variant == "site":
        codes = user.site_codes or [load_studies.SITES[rng.randrange(10)][0]]
        params = [("site", rng.choice(codes))]
    elif variant == "ready_ct":
        params = [("status", "ready"), ("modality", "CT")]
    elif variant == "stat_urgent":
        params = [("priority", "stat"), ("priority", "urgent")]
    elif variant == "mine":
        params = [("mine", "true")]
    elif variant == "page2":
        if not user.cursor:
            return None
        params = [("cursor", user.cursor)]
    elif variant == "q_surname":
        if not user.surnames:
            return None
        params = [("q", rng.choice(user.surnames))]
    else:
        raise ValueError(variant)
    return "/api/v1/worklist" + (f"?{urlencode(params)}" if params else "")


def worklist_templates(users: list[BenchUser], seed: int) -> list[dict[str, Any]]:
    """Weighted request templates: every kind of the mix for every user."""
    rng = random.Random(seed)
    per_role = Counter(u.role for u in users)
    templates: list[dict[str, Any]] = []
    for user in users:
        user_weight = ROLE_SHARE[user.role] / per_role[user.role]
        for variant, share in MIX.items():
            choices = max(1, len(user.surnames)) if variant == "q_surname" else 1
            for _ in range(choices):
                path = variant_query(user, variant, rng)
                if path is None:
                    continue
                templates.append(
                    {
                        "name": variant,
                        "method": "GET",
                        "path": path,
                        "token": user.token,
                        "weight": user_weight * share / choices,
                    }
                )
    return templates


def open_loop(
    workdir: Path,
    cluster: ApiCluster,
    templates: list[dict[str, Any]],
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """(a) fixed-rate schedule, latency from the scheduled send time."""
    plan = {
        "mode": "open",
        "rate": rate,
        "duration": duration,
        "seed": 7,
        "ports": cluster.ports,
        "templates": templates,
    }
    meter = CpuMeter(cluster.pids).start()
    result = run_loadgen(workdir, plan, f"open-{cluster.count}")
    cluster.check_alive()
    summary = summarise(result)
    summary["rate"] = rate
    summary["duration"] = duration
    summary["achieved_rate"] = result["sent"] / duration
    summary["cpu"] = per_request(meter.stop(result["cpu_seconds"]), summary["answered"])
    return summary


def closed_loop(
    workdir: Path,
    cluster: ApiCluster,
    templates: list[dict[str, Any]],
    *,
    clients: int,
    duration: float,
    warmup: float,
    label: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(b) ``clients`` back-to-back loops; client k talks to port k mod N."""
    plan = {
        "mode": "closed",
        "clients": clients,
        "duration": duration,
        "warmup": warmup,
        "seed": 11,
        "ports": cluster.ports,
        "templates": templates,
    }
    meter = CpuMeter(cluster.pids).start()
    result = run_loadgen(workdir, plan, f"{label}-{cluster.count}")
    cluster.check_alive()
    summary = summarise(result)
    summary["clients"] = clients
    summary["duration"] = duration
    summary["warmup"] = warmup
    summary["cpu"] = per_request(meter.stop(result["cpu_seconds"]), summary["answered"])
    return summary, result


def restore_claims(since: datetime, keep: set[int]) -> int:
    """Undo the benchmark's claims: delete them and put their studies back to ``ready``."""
    with psycopg.connect(load_studies.conninfo()) as conn, conn.transaction():
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT study_id FROM claims WHERE claimed_at >= %s", (since,)
            ).fetchall()
            if int(r[0]) not in keep
        ]
        if ids:
            conn.execute("DELETE FROM claims WHERE study_id = ANY(%s)", (ids,))
            conn.execute(
                "UPDATE studies SET status = 'ready' WHERE id = ANY(%s) AND status = 'in_progress'",
                (ids,),
            )
    return len(ids)
