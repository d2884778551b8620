"""The delivery status (webhook, RIS results) as `worklist site webhook` prints it."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from worklist.sites.schemas import WebhookAttemptOut, WebhookStatusOut


def print_webhook_status(status: WebhookStatusOut) -> None:
    """Print the endpoint's state and its latest attempts (never a secret)."""
    typer.echo(f"site {status.site.code} ({status.site.name})")
    typer.echo(f"webhook URL: {status.url or '-'}")
    line = f"status: {status.status.value}"
    if status.disabled_at is not None:
        since = status.disabled_at.isoformat(timespec="seconds")
        line += f" since {since} ({status.disabled_reason or 'no reason'})"
    typer.echo(line)
    if status.secret_rollover_until is not None:
        until = status.secret_rollover_until.isoformat(timespec="seconds")
        typer.echo(f"secret rollover: previous secret valid until {until}")
    oldest_at = status.oldest_pending_at
    oldest = f" (oldest {oldest_at.isoformat(timespec='seconds')})" if oldest_at else ""
    typer.echo(f"pending deliveries: {status.pending_deliveries}{oldest}")
    _print_attempts(status.recent_attempts)
    ris = status.ris
    if ris.host is None and not (ris.pending_deliveries or ris.failed_deliveries):
        typer.echo("results to RIS: not configured")
        return
    target = f"{ris.host}:{ris.port}" if ris.host is not None else "not configured"
    typer.echo(f"results to RIS (ORU^R01 over MLLP): {target}")
    oldest_at = ris.oldest_pending_at
    oldest = f" (oldest {oldest_at.isoformat(timespec='seconds')})" if oldest_at else ""
    typer.echo(f"pending results: {ris.pending_deliveries}{oldest}")
    typer.echo(f"results refused by the RIS (AR, not retried): {ris.failed_deliveries}")
    for failure in ris.recent_failures:
        at = failure.failed_at.isoformat(timespec="seconds") if failure.failed_at else "-"
        typer.echo(f"  {at} {failure.webhook_id} {failure.event}: {failure.error or ''}")
    _print_attempts(ris.recent_attempts)


def _print_attempts(attempts: list[WebhookAttemptOut]) -> None:
    if not attempts:
        typer.echo("no delivery attempts yet")
        return
    table = Table("at", "webhook id", "event", "status", "outcome", "error")
    for attempt in attempts:
        code = str(attempt.status_code) if attempt.status_code is not None else "-"
        table.add_row(
            attempt.at.isoformat(timespec="seconds"),
            attempt.webhook_id,
            attempt.event,
            code,
            attempt.outcome,
            attempt.error or "",
        )
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.print(table)
