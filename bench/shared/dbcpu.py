"""CPU accounting of a phase: the servers' process groups and their PostgreSQL backends."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import load_studies
from bench.shared.procs import group_cpu_seconds, pids_cpu_seconds
from bench.shared.services import pg_admin_conninfo
from bench.shared.stats import cpu_busy_seconds


def database_sessions(database: str) -> int:
    """Sessions (connections) opened so far to ``database``."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def exited_postgres_cpu_seconds() -> float:
    """CPU seconds of PostgreSQL processes that have exited (the postmaster's reaped children)."""

    def stat(pid: int) -> list[str]:
        # /proc/<pid>/stat after the command name: state, ppid, ..., cutime (13), cstime (14)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster_pid = int(stat(int(row[0]))[1])  # while our backend is alive
    postmaster = stat(postmaster_pid)
    return (int(postmaster[13]) + int(postmaster[14])) / os.sysconf("SC_CLK_TCK")


def backend_pids(database: str) -> list[int]:
    """PostgreSQL backends connected to ``database``."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [int(row[0]) for row in rows]


@dataclass
class CpuMeter:
    """CPU used during a phase by the API processes, the database backends and the rest."""

    api_pids: list[int]
    database: str = load_studies.DB_NAME
    api: float = 0.0
    backends: dict[int, float] = field(default_factory=dict)
    machine: float = 0.0
    wall: float = 0.0
    sessions: int = 0
    exited: float = 0.0

    def start(self) -> CpuMeter:
        """Take the starting snapshot."""
        self.api = sum(group_cpu_seconds(pid) for pid in self.api_pids)
        self.backends = pids_cpu_seconds(backend_pids(self.database))
        self.exited = exited_postgres_cpu_seconds()
        self.machine = cpu_busy_seconds()
        self.sessions = database_sessions(self.database)
        self.wall = time.perf_counter()
        return self

    def stop(self, loadgen_cpu: float) -> dict[str, float]:
        """CPU seconds of each party since ``start``."""
        api = sum(group_cpu_seconds(pid) for pid in self.api_pids) - self.api
        now = pids_cpu_seconds(backend_pids(self.database))
        database = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in now.items())
        # Parallel query workers and closed connections exit during the phase: their CPU
        # is accounted to the postmaster. It covers every database of the server (other
        # users' too), so it is reported apart rather than added to the benchmark's.
        exited = exited_postgres_cpu_seconds() - self.exited
        machine = cpu_busy_seconds() - self.machine
        wall = time.perf_counter() - self.wall
        return {
            "wall_seconds": round(wall, 2),
            "api_cpu_seconds": round(api, 2),
            "database_cpu_seconds": round(database, 2),
            "postgres_exited_processes_cpu_seconds": round(exited, 2),
            "loadgen_cpu_seconds": round(loadgen_cpu, 2),
            "other_cpu_seconds": round(
                max(0.0, machine - api - database - exited - loadgen_cpu), 2
            ),
            # Connections opened to the database during the phase (pool growth or churn).
            "database_sessions_opened": database_sessions(self.database) - self.sessions,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }


def database_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each live PostgreSQL backend connected to ``database``."""
    return pids_cpu_seconds(backend_pids(database))
