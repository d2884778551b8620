"""EXPLAIN (ANALYZE, BUFFERS) of the SQL the API really runs.

The API is run in-process (``fastapi.testclient.TestClient`` on ``create_app``, the same
code and configuration as ``worklist api``) against the benchmark database; a SQLAlchemy
``before_cursor_execute`` hook records every statement with its bound parameters while
one request of each kind is made. Each recorded statement is then explained with the same
parameters over psycopg (the API's driver), inside a transaction that is rolled back, so
statements that write (a claim) change nothing. Plans are explained twice and the second
(warm cache, as on a server that has been up for a while) is kept.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from worklist.config import Settings

_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")
_PLANNING = re.compile(r"Planning Time: ([\d.]+) ms")
_HIT = re.compile(r"Buffers: shared hit=(\d+)(?: read=(\d+))?")
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_INDEXES = re.compile(r"(?:Index|Index Only|Bitmap Index) Scan (?:Backward )?(?:using|on) (\w+)")
_SORT = re.compile(r"Sort Method: ([\w-]+ ?\w*)")


@dataclass
class Captured:
    """One statement the API executed, with its parameters."""

    sql: str
    params: Any


@dataclass
class Plan:
    """A statement, its plan and the figures read from it."""

    request: str
    sql: str
    params: Any
    plan: str = ""
    error: str | None = None
    execution_ms: float | None = None
    planning_ms: float | None = None
    shared_hit: int = 0
    shared_read: int = 0
    seq_scans: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    sorts: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """What the statement is, in a few words (``SELECT studies ... SKIP LOCKED``)."""
        return statement_kind(self.sql)

    def summary(self) -> str:
        """One line: time, buffers, access paths."""
        if self.error:
            return f"error: {self.error}"
        parts = [
            f"{self.execution_ms:.2f} ms exec" if self.execution_ms is not None else "? ms",
            f"{self.planning_ms:.2f} ms plan" if self.planning_ms is not None else "",
            f"buffers {self.shared_hit}+{self.shared_read}r",
        ]
        if self.indexes:
            parts.append("index " + ",".join(dict.fromkeys(self.indexes)))
        if self.seq_scans:
            parts.append("SEQ SCAN " + ",".join(dict.fromkeys(self.seq_scans)))
        if self.sorts:
            parts.append("sort " + ",".join(self.sorts))
        return "; ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "request": self.request,
            "kind": self.kind,
            "sql": self.sql,
            "params": repr(self.params),
            "plan": self.plan,
            "error": self.error,
            "execution_ms": self.execution_ms,
            "planning_ms": self.planning_ms,
            "shared_hit": self.shared_hit,
            "shared_read": self.shared_read,
            "seq_scans": self.seq_scans,
            "indexes": self.indexes,
            "sorts": self.sorts,
            "summary": self.summary(),
        }


class StatementRecorder:
    """Collects the statements every SQLAlchemy engine of this process executes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statements: list[Captured] = []

    def _hook(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if executemany:
            return
        with self._lock:
            self.statements.append(Captured(statement, parameters))

    @contextmanager
    def recording(self) -> Iterator[StatementRecorder]:
        """Install the hook on every Engine for the duration of the block."""
        event.listen(Engine, "before_cursor_execute", self._hook)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self._hook)

    def take(self) -> list[Captured]:
        """The statements recorded since the last call."""
        with self._lock:
            taken, self.statements = self.statements, []
        return taken


def capture(
    settings: Settings, requests: Sequence[tuple[str, str, str, str]]
) -> dict[str, list[Captured]]:
    """Run each (name, method, path, token) request in-process; return its statements."""
    from fastapi.testclient import TestClient

    from worklist.app import create_app

    recorder = StatementRecorder()
    captured: dict[str, list[Captured]] = {}
    with recorder.recording(), TestClient(create_app(settings)) as client:
        for name, method, path, token in requests:
            headers = {"Authorization": f"Bearer {token}"}
            # Once to warm the pool and caches, then the recorded request.
            client.request(method, path, headers=headers)
            recorder.take()
            response = client.request(method, path, headers=headers)
            statements = recorder.take()
            if response.status_code >= 400:
                raise RuntimeError(f"{name}: {method} {path} -> {response.status_code}")
            captured[name] = statements
    return captured


def statement_kind(sql: str) -> str:
    """A short label for a statement: verb, main table, locking clause."""
    text = " ".join(sql.split())
    upper = text.upper()
    verb = upper.split(" ", 1)[0]
    table = ""
    # A data-modifying WITH (``next``'s pick and claim) is named by the table it reads.
    if verb in ("SELECT", "WITH"):
        match = re.search(r"\bFROM (\w+)", text, re.IGNORECASE)
        table = match.group(1) if match else ""
    elif verb in ("INSERT", "UPDATE", "DELETE"):
        match = re.search(r"(?:INTO|UPDATE|FROM) (\w+)", text, re.IGNORECASE)
        table = match.group(1) if match else ""
    extras = [
        label
        for needle, label in (
            ("SKIP LOCKED", "skip locked"),
            ("FOR NO KEY UPDATE", "for no key update"),
            ("FOR UPDATE", "for update"),
            ("ON CONFLICT", "on conflict"),
            ("ORDER BY", "ordered"),
        )
        if needle in upper
    ]
    return " ".join([verb.lower(), table, *(f"[{e}]" for e in extras[:2])]).strip()


def is_main_query(sql: str) -> bool:
    """Statements worth a plan: reads and claims of studies (not the audit insert)."""
    lowered = sql.lower()
    if "audit_log" in lowered or lowered.startswith(("savepoint", "release", "rollback")):
        return False
    return "studies" in lowered or "claims" in lowered


def explain(conninfo: str, request: str, statement: Captured, *, repeat: int = 2) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) ``statement`` with its parameters, rolled back."""
    plan = Plan(request=request, sql=statement.sql, params=statement.params)
    with psycopg.connect(conninfo) as conn:
        text = ""
        for _ in range(repeat):
            try:
                with conn.transaction(force_rollback=True):
                    rows = conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params
                    ).fetchall()
                text = "\n".join(str(row[0]) for row in rows)
            except psycopg.Error as exc:
                plan.error = str(exc).splitlines()[0]
                return plan
    plan.plan = text
    if match := _EXECUTION.search(text):
        plan.execution_ms = float(match.group(1))
    if match := _PLANNING.search(text):
        plan.planning_ms = float(match.group(1))
    first_buffers = _HIT.search(text)
    if first_buffers:
        plan.shared_hit = int(first_buffers.group(1))
        plan.shared_read = int(first_buffers.group(2) or 0)
    plan.seq_scans = _SEQ_SCAN.findall(text)
    plan.indexes = _INDEXES.findall(text)
    plan.sorts = [s.strip() for s in _SORT.findall(text)]
    return plan


def explain_requests(
    settings: Settings, conninfo: str, requests: Sequence[tuple[str, str, str, str]]
) -> list[Plan]:
    """Capture and explain the main statements of each request."""
    plans: list[Plan] = []
    for name, statements in capture(settings, requests).items():
        main = [s for s in statements if is_main_query(s.sql)]
        for statement in main:
            plans.append(explain(conninfo, name, statement))
    return plans
