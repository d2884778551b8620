"""Matching, figures and the table of ``bench.alerts``.

An alert's latency on a channel is its first receipt there (matched by the alert id:
the SSE event's ``data.id``, the webhook payload's ``data.id``) minus ``t0``, the
moment its ``POST .../alerts`` was handed to the HTTP client. Later receipts of the
same alert are duplicates (at-least-once delivery allows them; they are counted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

from bench import load_studies
from bench.alert_clients import SentAlert, SseEvent
from bench.shared.stats import fmt_ms, percentiles

RAISED = "alert.raised"
CHANNELS = ("sse", "webhook")


# Receiver log -> (bytes parsed so far, receipts): the log is re-read while alerts drain,
# so only what was appended since is parsed.
_RECEIPTS: dict[Path, tuple[int, list[dict[str, Any]]]] = {}


def read_receipts(log_path: Path) -> list[dict[str, Any]]:
    """The webhook receiver's JSON lines so far (one per request it answered)."""
    offset, receipts = _RECEIPTS.get(log_path, (0, []))
    try:
        with log_path.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
    except OSError:
        return list(receipts)
    complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
    for line in complete.decode(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                receipts.append(json.loads(line))
            except ValueError:
                continue
    _RECEIPTS[log_path] = (offset + len(complete), receipts)
    return list(receipts)


def first_arrivals(
    sse: Iterable[SseEvent], webhooks: Iterable[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """channel -> alert id -> first arrival of its ``alert.raised`` (verified webhooks only)."""
    result: dict[str, dict[str, float]] = {"sse": {}, "webhook": {}}
    for event in sse:
        if event.type == RAISED and event.alert_id:
            result["sse"].setdefault(event.alert_id, event.at)
    for receipt in webhooks:
        if receipt.get("verified") and receipt.get("type") == RAISED and receipt.get("alert_id"):
            result["webhook"].setdefault(str(receipt["alert_id"]), float(receipt["at"]))
    return result


def all_received(alerts: list[SentAlert], arrivals: dict[str, dict[str, float]]) -> bool:
    """True when every alert that was created arrived on both channels."""
    return all(
        alert.alert_id in arrivals[channel]
        for alert in alerts
        if alert.alert_id
        for channel in CHANNELS
    )


def phase_figures(
    alerts: list[SentAlert],
    sse: list[SseEvent],
    webhooks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Latency percentiles per channel, POST latency, missing and duplicate receipts."""
    arrivals = first_arrivals(sse, webhooks)
    ids = {a.alert_id for a in alerts if a.alert_id}
    sse_counts = Counter(e.alert_id for e in sse if e.type == RAISED and e.alert_id in ids)
    hook_counts = Counter(
        str(r.get("alert_id"))
        for r in webhooks
        if r.get("verified") and r.get("type") == RAISED and str(r.get("alert_id")) in ids
    )
    figures: dict[str, Any] = {}
    for channel, counts in (("sse", sse_counts), ("webhook", hook_counts)):
        values = [
            (arrivals[channel][a.alert_id] - a.t0) * 1000
            for a in alerts
            if a.alert_id and a.alert_id in arrivals[channel]
        ]
        figures[channel] = {
            "n": len(values),
            **percentiles(values),
            "missing": len(ids) - len(values),
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        }
    # Receipt minus the POST's answer: what delivery adds once the alert is committed
    # (negative when the alert arrived before the answer did).
    figures["after_post"] = {
        channel: percentiles(
            [
                (arrivals[channel][a.alert_id] - a.t0) * 1000 - a.post_ms
                for a in alerts
                if a.alert_id and a.alert_id in arrivals[channel] and a.post_ms is not None
            ]
        )
        for channel in CHANNELS
    }
    post = [a.post_ms for a in alerts if a.post_ms is not None]
    failed = [a for a in alerts if a.status != 201]
    figures["post"] = {
        "n": len(post),
        **percentiles(post),
        "missing": len(failed),
        "duplicates": 0,
        "statuses": dict(Counter(str(a.status) for a in alerts)),
        "errors": [a.error for a in failed[:10]],
    }
    return figures


def per_alert(
    alerts: list[SentAlert], sse: list[SseEvent], webhooks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every alert with its channel latencies (ms), for the JSON output."""
    arrivals = first_arrivals(sse, webhooks)
    rows = []
    for alert in alerts:
        row = alert.as_dict()
        for channel in CHANNELS:
            at = arrivals[channel].get(alert.alert_id or "")
            row[f"{channel}_ms"] = None if at is None else round((at - alert.t0) * 1000, 3)
        rows.append(row)
    return rows


def wake_figures(alerts: list[SentAlert], wakes: list[float]) -> dict[str, Any]:
    """Wake-ups seen for trust A during the phase and t0 -> next wake-up (diagnostic)."""
    if not alerts:
        return {}
    ordered = sorted(wakes)
    start = min(a.t0 for a in alerts)
    end = max(a.t0 + (a.post_ms or 0) / 1000 for a in alerts) + 1.0
    seen = [t for t in ordered if start <= t <= end]
    deltas = []
    for alert in alerts:
        nxt = next((t for t in seen if t >= alert.t0), None)
        if nxt is not None and nxt - alert.t0 < 2.0:
            deltas.append((nxt - alert.t0) * 1000)
    return {
        "wakeups_seen": len(seen),
        "alerts": len(alerts),
        "t0_to_next_wakeup_ms": percentiles(deltas),
    }


DELIVERY_SQL = """
SELECT m.alert_id::text, d.channel::text, d.status::text, d.attempts,
       extract(epoch FROM m.created_at)::float8,
       extract(epoch FROM d.delivered_at)::float8,
       (SELECT extract(epoch FROM min(a.started_at))::float8
          FROM delivery_attempts a WHERE a.delivery_id = d.id),
       (SELECT a.duration_ms FROM delivery_attempts a WHERE a.delivery_id = d.id
          ORDER BY a.id LIMIT 1),
       (SELECT count(*) FROM delivery_attempts a WHERE a.delivery_id = d.id)
  FROM outbox_messages m JOIN deliveries d ON d.message_id = m.id
 WHERE m.site_id = %s AND m.type = %s AND m.alert_id = ANY(%s::uuid[])
"""


def delivery_rows(site_id: int, alert_ids: list[str]) -> list[tuple[Any, ...]]:
    """The ``alert.raised`` deliveries of ``alert_ids`` as the database has them."""
    with psycopg.connect(load_studies.conninfo(), autocommit=True) as conn:
        return list(conn.execute(DELIVERY_SQL, (site_id, RAISED, alert_ids)).fetchall())


def delivery_check(alerts: list[SentAlert], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Per channel: deliveries by status, attempts, and whether every alert has a delivered one."""
    ids = {a.alert_id for a in alerts if a.alert_id}
    result: dict[str, Any] = {}
    for channel in CHANNELS:
        mine = [r for r in rows if r[1] == channel and r[0] in ids]
        delivered = {r[0] for r in mine if r[2] == "delivered"}
        result[channel] = {
            "deliveries": len(mine),
            "by_status": dict(Counter(r[2] for r in mine)),
            "alerts_without_delivery_row": len(ids - {r[0] for r in mine}),
            "not_delivered": len(ids - delivered),
            "attempts_total": sum(int(r[3] or 0) for r in mine),
            "attempt_rows": sum(int(r[8] or 0) for r in mine),
            "retried": sum(1 for r in mine if int(r[3] or 0) > 1),
        }
    return result


def breakdown(alerts: list[SentAlert], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Where the time goes, from the database's timestamps (ms after t0, wall clock).

    ``message_created``: the outbox row's ``created_at`` (the API transaction's start);
    ``webhook_attempt_started``: the dispatcher began its first POST;
    ``webhook_attempt_duration``: that POST's own duration (dispatcher's measure);
    ``webhook_recorded_delivered`` / ``sse_marked_delivered``: ``delivered_at``.
    """
    t0 = {a.alert_id: a.t0_wall for a in alerts if a.alert_id}
    series: dict[str, list[float]] = {
        "message_created": [],
        "webhook_attempt_started": [],
        "webhook_attempt_duration": [],
        "webhook_recorded_delivered": [],
        "sse_marked_delivered": [],
    }
    for alert_id, channel, _status, _att, created, delivered, first, duration, _n in rows:
        start = t0.get(alert_id)
        if start is None:
            continue
        if channel == "webhook":
            series["message_created"].append((created - start) * 1000)
            if first is not None:
                series["webhook_attempt_started"].append((first - start) * 1000)
            if duration is not None:
                series["webhook_attempt_duration"].append(float(duration))
            if delivered is not None:
                series["webhook_recorded_delivered"].append((delivered - start) * 1000)
        elif channel == "sse" and delivered is not None:
            series["sse_marked_delivered"].append((delivered - start) * 1000)
    return {name: {"n": len(v), **percentiles(v)} for name, v in series.items()}


LABELS = {"sse": "SSE stream", "webhook": "webhook", "post": "POST .../alerts"}


def format_table(phases: dict[str, dict[str, Any]]) -> str:
    """phase, channel, n, p50, p95, p99, max, missing, duplicates."""
    header = (
        f"{'phase':<6} {'channel':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'missing':>8} {'dup':>5}"
    )
    lines = [header, "-" * len(header)]
    for phase, data in phases.items():
        for channel in ("sse", "webhook", "post"):
            f = data["figures"][channel]
            lines.append(
                f"{phase:<6} {LABELS[channel]:<16} {f['n']:>6} {fmt_ms(f['p50']):>8} "
                f"{fmt_ms(f['p95']):>8} {fmt_ms(f['p99']):>8} {fmt_ms(f['max']):>8} "
                f"{f['missing']:>8} {f['duplicates']:>5}"
            )
    return "\n".join(lines)


STEP_LABELS = {
    "message_created": "t0 -> outbox row created_at (tx start)",
    "webhook_attempt_started": "t0 -> dispatcher starts the POST",
    "webhook_attempt_duration": "   dispatcher's POST duration",
    "webhook_recorded_delivered": "t0 -> webhook delivered_at recorded",
    "sse_marked_delivered": "t0 -> sse delivered_at recorded",
}


def format_breakdown(phases: dict[str, dict[str, Any]]) -> str:
    """Where each phase's time goes (ms): receipt after the POST's answer, database times."""
    lines = [f"  {'phase':<6} {'step (ms)':<42} {'p50':>8} {'p99':>8}"]

    def add(phase: str, step: str, stats: dict[str, Any], note: str = "") -> None:
        lines.append(
            f"  {phase:<6} {step:<42} {fmt_ms(stats['p50']):>8} {fmt_ms(stats['p99']):>8}{note}"
        )

    for phase, data in phases.items():
        for channel, stats in data["figures"]["after_post"].items():
            add(phase, f"POST answered -> {LABELS[channel]} receipt", stats)
        for step, stats in data["breakdown"].items():
            if stats["n"]:
                add(phase, STEP_LABELS.get(step, step), stats)
        wake = data.get("wake", {})
        if wake:
            note = f"   ({wake['wakeups_seen']} wake-ups for {wake['alerts']} alerts)"
            add(phase, "t0 -> Redis wake-up (approx.)", wake["t0_to_next_wakeup_ms"], note)
    return "\n".join(lines)
