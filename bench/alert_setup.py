"""The alert benchmark's own trusts, users and studies in ``bench_worklist``, and their removal.

``bench.alerts`` runs against the worklist benchmark's 1M-study database (the load it
adds is that benchmark's), but raises its alerts on studies of two trusts of its own:

- ``BENCH-ALERTS-A`` (trust A, the originating trust): registered with
  ``worklist site add ... --webhook-url <the benchmark's receiver>``, which prints the
  webhook secret once; an ``alert_client`` of A reads the alert stream;
- ``BENCH-ALERTS-B`` (trust B): the radiologist's home trust; the radiologist holds
  privileges at A and B and claims A's studies through the API.

Nothing of the worklist benchmark's data set is touched, and everything is removed at
the end (and before a run, in case an earlier one was killed), so the worklist
benchmark's users, backlog and results stay as they were. Alerts, breaches, outbox
messages and delivery attempts are protected by triggers against DELETE (the clinical
record is append-only); the removal disables those user triggers inside its own
transaction only (``ALTER TABLE ... DISABLE TRIGGER USER`` is transactional and takes
an exclusive lock, so no other session ever sees them disabled), deletes the
benchmark's rows only, re-enables them and commits. Foreign keys stay enforced, so a
row the removal missed makes it fail rather than leave anything dangling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench import load_studies
from bench.shared.procs import BenchError, run_checked
from bench.shared.services import worklist_cli

SITE_A = "BENCH-ALERTS-A"
SITE_B = "BENCH-ALERTS-B"
SITE_NAMES = {
    SITE_A: "Alert Benchmark Originating Trust (A)",
    SITE_B: "Alert Benchmark Reporting Trust (B)",
}
AE_TITLES = {SITE_A: "BALERTA", SITE_B: "BALERTB"}
RADIOLOGIST = "bench-alerts-rad"
ALERT_CLIENT = "bench-alerts-client"
USERNAMES = (RADIOLOGIST, ALERT_CLIENT)
PASSWORD = load_studies.BENCH_PASSWORD
UID_BASE = f"{load_studies.UID_ROOT}.900"
# Tables whose user triggers (append-only guards) the removal disables for its transaction.
GUARDED_TABLES = (
    "delivery_attempts",
    "alert_stream",
    "outbox_messages",
    "alert_breaches",
    "alerts",
)
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@dataclass
class BenchTrusts:
    """What the benchmark created: trust A's id and webhook secret, the study UIDs."""

    site_a_id: int
    webhook_url: str
    webhook_secret: str = field(repr=False)
    study_uids: list[str]

    def describe(self) -> dict[str, Any]:
        """JSON form (no secret)."""
        return {
            "site_a": SITE_A,
            "site_b": SITE_B,
            "radiologist": f"{RADIOLOGIST} (privileges at {SITE_A} and {SITE_B})",
            "alert_client": f"{ALERT_CLIENT} ({SITE_A})",
            "webhook_url": self.webhook_url,
            "studies": len(self.study_uids),
        }


def cli_env(secret_key: str) -> dict[str, str]:
    """Environment for ``worklist`` CLI commands on the benchmark database."""
    return {
        "WORKLIST_DATABASE_URL": load_studies.database_url(),
        "WORKLIST_SECRET_KEY": secret_key,
        "WORKLIST_LOG_LEVEL": "WARNING",
        # The webhook receiver listens on loopback (docs/webhooks.md: private targets
        # are refused unless the operator allows them).
        "WORKLIST_WEBHOOK_ALLOW_PRIVATE": "true",
    }


def create(*, webhook_url: str, studies: int, secret_key: str) -> BenchTrusts:
    """Register the trusts and users with the real CLI and insert ``studies`` ready studies."""
    env = cli_env(secret_key)
    out = run_checked(
        worklist_cli(
            "site",
            "add",
            SITE_A,
            "--name",
            SITE_NAMES[SITE_A],
            "--ae-title",
            AE_TITLES[SITE_A],
            "--webhook-url",
            webhook_url,
        ),
        env=env,
        timeout=120,
    )
    match = _SECRET.search(out)
    if match is None:
        raise BenchError(f"`worklist site add --webhook-url` printed no whsec_ secret:\n{out}")
    run_checked(
        worklist_cli(
            "site", "add", SITE_B, "--name", SITE_NAMES[SITE_B], "--ae-title", AE_TITLES[SITE_B]
        ),
        env=env,
        timeout=120,
    )
    for username, role, sites in (
        (RADIOLOGIST, "radiologist", (SITE_A, SITE_B)),
        (ALERT_CLIENT, "alert_client", (SITE_A,)),
    ):
        site_args = [arg for code in sites for arg in ("--site", code)]
        run_checked(
            worklist_cli("user", "add", username, "--role", role, *site_args, "--password-stdin"),
            env=env,
            input_text=PASSWORD + "\n",
            timeout=120,
        )
    site_a_id, uids = _insert_studies(studies)
    return BenchTrusts(site_a_id, webhook_url, match.group(0), uids)


def _insert_studies(count: int) -> tuple[int, list[str]]:
    """One patient of trust A and ``count`` ready urgent CT studies of theirs."""
    with psycopg.connect(load_studies.conninfo()) as conn, conn.transaction():
        row = conn.execute("SELECT id FROM sites WHERE code = %s", (SITE_A,)).fetchone()
        if row is None:
            raise BenchError(f"site {SITE_A} was not registered")
        site_id = int(row[0])
        patient = conn.execute(
            "INSERT INTO patients (site_id, local_id, nhs_number, name, birth_date, sex) "
            "VALUES (%s, 'BENCHALERT0001', NULL, 'ALERT^BENCHMARK', '1950-01-01', 'F') "
            "RETURNING id",
            (site_id,),
        ).fetchone()
        assert patient is not None
        uids = [f"{UID_BASE}.{n}" for n in range(1, count + 1)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO studies (study_uid, site_id, patient_id, accession_number, "
                "description, study_datetime, modalities, priority, due_at, status, "
                "received_at, last_instance_at, series_count, instance_count) "
                "VALUES (%s, %s, %s, %s, 'CT Head', now(), '{CT}', 'urgent', "
                "now() + interval '4 hours', 'ready', now(), now(), 1, 120)",
                [(uid, site_id, patient[0], f"BALERT{n:06d}") for n, uid in enumerate(uids, 1)],
            )
    return site_id, uids


def audit_high_water() -> int:
    """The newest audit row's id now (the run's audit rows come after it)."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def remove(audit_after: int | None = None) -> dict[str, int]:
    """Delete every row the benchmark created (see the module docstring); rows per table.

    With ``audit_after``, also every audit row after that id: the run's logins and
    worklist reads of the load (the database is used by nothing else during a run).
    """
    removed: dict[str, int] = {}
    with psycopg.connect(load_studies.conninfo()) as conn, conn.transaction():
        if audit_after is not None:
            cur = conn.execute("DELETE FROM audit_log WHERE id > %s", (audit_after,))
            removed["audit_log_of_the_run"] = cur.rowcount
        sites = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM sites WHERE code = ANY(%s)", ([SITE_A, SITE_B],)
            ).fetchall()
        ]
        users = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM users WHERE username = ANY(%s)", (list(USERNAMES),)
            ).fetchall()
        ]
        if not sites and not users:
            return removed
        for table in GUARDED_TABLES:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        statements = (
            (
                "alert_ids",
                "CREATE TEMP TABLE bench_alert_ids ON COMMIT DROP AS SELECT id FROM alerts "
                "WHERE site_id = ANY(%(sites)s) OR raised_by_id = ANY(%(users)s) "
                "OR study_id IN (SELECT id FROM studies WHERE site_id = ANY(%(sites)s))",
            ),
            (
                "message_ids",
                "CREATE TEMP TABLE bench_message_ids ON COMMIT DROP AS SELECT id "
                "FROM outbox_messages WHERE site_id = ANY(%(sites)s) "
                "OR alert_id IN (SELECT id FROM bench_alert_ids)",
            ),
            (
                "delivery_attempts",
                "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries "
                "WHERE message_id IN (SELECT id FROM bench_message_ids))",
            ),
            (
                "deliveries",
                "DELETE FROM deliveries WHERE message_id IN (SELECT id FROM bench_message_ids)",
            ),
            (
                "alert_stream",
                "DELETE FROM alert_stream WHERE message_id IN (SELECT id FROM bench_message_ids)",
            ),
            (
                "outbox_messages",
                "DELETE FROM outbox_messages WHERE id IN (SELECT id FROM bench_message_ids)",
            ),
            (
                "alert_breaches",
                "DELETE FROM alert_breaches WHERE alert_id IN (SELECT id FROM bench_alert_ids)",
            ),
            ("alerts", "DELETE FROM alerts WHERE id IN (SELECT id FROM bench_alert_ids)"),
            (
                "audit_log",
                "DELETE FROM audit_log WHERE site_id = ANY(%(sites)s) "
                "OR actor = ANY(%(usernames)s) OR detail->>'username' = ANY(%(usernames)s) "
                "OR study_uid LIKE %(uid_prefix)s",
            ),
            (
                "claims",
                "DELETE FROM claims WHERE user_id = ANY(%(users)s) "
                "OR study_id IN (SELECT id FROM studies WHERE site_id = ANY(%(sites)s))",
            ),
            ("studies", "DELETE FROM studies WHERE site_id = ANY(%(sites)s)"),
            ("patients", "DELETE FROM patients WHERE site_id = ANY(%(sites)s)"),
            ("users", "DELETE FROM users WHERE id = ANY(%(users)s)"),
            ("sites", "DELETE FROM sites WHERE id = ANY(%(sites)s)"),
        )
        params = {
            "sites": sites,
            "users": users,
            "usernames": list(USERNAMES),
            "uid_prefix": f"{UID_BASE}.%",
        }
        for name, sql in statements:
            cur = conn.execute(sql, params)
            if not name.endswith("_ids"):
                removed[name] = cur.rowcount
        for table in GUARDED_TABLES:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    return removed


def vacuum_touched() -> None:
    """VACUUM (ANALYZE) the tables the run wrote to, so the worklist benchmark finds its
    pages all-visible again (index-only scans) and its statistics unchanged."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        conn.execute(
            "VACUUM (ANALYZE) studies, patients, claims, users, user_sites, sites, dicom_nodes, "
            "audit_log"
        )
