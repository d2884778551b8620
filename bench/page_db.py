"""PostgreSQL's CPU for one worklist page, alone and with others at once.

    python -m bench.page_db [--runs 300] [--connections 8] [--seconds 8]

On the 1M-study ``bench_worklist`` database (``python -m bench.load_studies``), the page
statement the API sends (``worklist.studies.page``, a radiologist of three sites, the
default filters) is run on psycopg connections of our own, and the CPU of their backends
is read from ``/proc``:

- one connection, ``--runs`` times: the statement committed (its audit row written), the
  same rolled back, and the statement without its audit row (the page alone);
- ``--connections`` connections at once for ``--seconds``: the statement committed.

So what a page costs the database is measured apart from the API, and whether running
pages side by side costs more per page (contention) than one at a time. Audit rows are
written to ``bench_worklist`` by the committed runs (as the API writes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import load_studies
from bench.shared.stats import host_info
from worklist.enums import DEFAULT_STATUS_FILTER, Role
from worklist.studies import page
from worklist.studies.schemas import WorklistFilters
from worklist.users.repository import Account

OUT_DIR = Path(__file__).resolve().parent / "out"
SITE_IDS = (1, 2, 3)
FILTERS = WorklistFilters(
    statuses=DEFAULT_STATUS_FILTER,
    sites=(),
    modalities=(),
    priorities=(),
    patient_sources=(),
    q=None,
    mine=False,
)


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the PostgreSQL backend ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def connect() -> psycopg.AsyncConnection[Any]:
    """A connection as the API's: autocommit, no parallel query."""
    connection = await psycopg.AsyncConnection.connect(load_studies.conninfo(), autocommit=True)
    await connection.execute("SET max_parallel_workers_per_gather = 0")
    return connection


def reader(n: int) -> Account:
    """The radiologist ``n`` of the benchmark's pages (visibility and the audit row)."""
    return Account(
        id=n,
        username=f"bench{n:03d}",
        role=Role.RADIOLOGIST,
        active=True,
        token_version=0,
        site_ids=SITE_IDS,
        subspecialties=(),
    )


async def read(connection: psycopg.AsyncConnection[Any], n: int) -> None:
    """One default page for radiologist ``n``, as the API reads it."""
    await page.read_page(
        connection,
        account=reader(n),
        address=None,
        filters=FILTERS,
        after=None,
        cursor=None,
        limit=50,
    )


async def one_at_a_time(runs: int) -> dict[str, float]:
    """CPU ms per page on one connection: committed, rolled back, without the audit row."""
    connection = await connect()
    pid = connection.info.backend_pid
    await page.read_page(
        connection,
        account=reader(1),
        address=None,
        filters=FILTERS,
        after=None,
        cursor=None,
        limit=50,
    )
    # The statement the API sends for this shape (the one just run).
    sql, _ = next(iter(page._STATEMENTS))
    without_audit = sql[: sql.index("audited AS")].rstrip().rstrip(",") + "\n"
    without_audit += sql[sql.index("SELECT page.*") :]
    params = {
        "wl_rows": 51,
        "wl_shown": 50,
        "wl_visible_site_ids": list(SITE_IDS),
        "audit_actor": "bench",
        "audit_actor_kind": "user",
        "audit_action": "worklist.list",
        "audit_address": None,
        "audit_detail": Jsonb({"cursor": None}),
    }
    out: dict[str, float] = {}
    for label, statement, rolled_back in (
        ("committed", sql, False),
        ("rolled_back", sql, True),
        ("without_audit", without_audit, False),
    ):
        for _ in range(10):  # prepared by psycopg after five runs
            await (await connection.execute(statement, params)).fetchall()
        started = backend_cpu(pid)
        for _ in range(runs):
            if rolled_back:
                async with connection.transaction(force_rollback=True):
                    await (await connection.execute(statement, params)).fetchall()
            else:
                await (await connection.execute(statement, params)).fetchall()
        out[label] = round((backend_cpu(pid) - started) * 1000 / runs, 3)
    await connection.close()
    return out


async def side_by_side(connections: int, seconds: float) -> dict[str, float]:
    """CPU ms per page and pages/s with ``connections`` running pages at once."""
    pool = [await connect() for _ in range(connections)]
    pids = [c.info.backend_pid for c in pool]
    stop = asyncio.Event()
    done = [0]

    async def run(connection: psycopg.AsyncConnection[Any], n: int) -> None:
        while not stop.is_set():
            await page.read_page(
                connection,
                account=reader(n),
                address=None,
                filters=FILTERS,
                after=None,
                cursor=None,
                limit=50,
            )
            done[0] += 1

    tasks = [asyncio.create_task(run(c, n + 1)) for n, c in enumerate(pool)]
    await asyncio.sleep(2)
    done[0], started, began = 0, sum(backend_cpu(p) for p in pids), time.perf_counter()
    await asyncio.sleep(seconds)
    count, used = done[0], sum(backend_cpu(p) for p in pids) - started
    elapsed = time.perf_counter() - began
    stop.set()
    await asyncio.gather(*tasks)
    for connection in pool:
        await connection.close()
    return {
        "connections": connections,
        "pages_per_second": round(count / elapsed, 1),
        "cpu_ms_per_page": round(used * 1000 / count, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both measures; print them and keep them under bench/out/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    alone = asyncio.run(one_at_a_time(args.runs))
    together = {
        "1": asyncio.run(side_by_side(1, args.seconds)),
        str(args.connections): asyncio.run(side_by_side(args.connections, args.seconds)),
    }
    result = {"host": host_info(), "one_connection_cpu_ms": alone, "side_by_side": together}
    print(json.dumps(result, indent=2))
    OUT_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (OUT_DIR / f"page-db-{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
