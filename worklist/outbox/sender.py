"""One webhook POST and what came of it (no database here)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from worklist.errors import InvalidInput
from worklist.outbox import repository
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.signing import InvalidSecret, webhook_headers
from worklist.outbox.targets import TargetPolicy
from worklist.outbox.transport import GuardedTransport, Resolver, system_resolve

# A short reply is read (and dropped) so the connection can be reused; the rest is not.
MAX_REPLY_BYTES = 64 * 1024


@dataclass(frozen=True)
class AttemptResult:
    """What one POST did: outcome as stored, status, error text and ``Retry-After``.

    The error is ours (a status code with its standard phrase, or the class of failure):
    never the receiver's reply body or reason phrase (attempts are shown through the API).
    """

    started_at: datetime
    duration_ms: float
    outcome: str
    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        """True for a 2xx answer."""
        return self.outcome == repository.OUTCOME_DELIVERED


def make_client(
    *, concurrency: int, policy: TargetPolicy, resolve: Resolver = system_resolve
) -> httpx.AsyncClient:
    """The HTTP client of a dispatcher: only ``policy``'s targets, no redirects, no env proxies."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        transport=GuardedTransport(policy=policy, limits=limits, resolve=resolve),
        follow_redirects=False,
        trust_env=False,
    )


async def _drain(response: httpx.Response) -> None:
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size >= MAX_REPLY_BYTES:
            break


def describe_status(status: int) -> str:
    """``HTTP 503 Service Unavailable``: the code and its standard phrase (not the receiver's)."""
    text = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".strip()
    if 300 <= status < 400:
        text += " (redirect not followed)"
    return text


def shown_error(status_code: int | None, error: str | None) -> str | None:
    """An attempt's error as the API shows it: for an answer, its status only.

    Rows recorded before reply bodies were dropped may still hold one; they are
    append-only, so they are not rewritten but never shown.
    """
    if error is None or status_code is None:
        return error
    return describe_status(status_code)


def describe_failure(exc: Exception, *, timeout: float) -> tuple[str, str]:
    """The outcome and our own error text for a POST that got no answer."""
    if isinstance(exc, InvalidInput):  # TargetRefused, or a stored URL that is no longer valid
        return repository.OUTCOME_REFUSED, f"refused by policy: {exc.detail}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return repository.OUTCOME_TIMEOUT, f"timeout: no answer within {timeout:g}s"
    if isinstance(exc, httpx.ConnectError):
        # The text is the operating system's or the resolver's, never the receiver's.
        return repository.OUTCOME_ERROR, f"connection failed: {exc}".strip().rstrip(":")
    if isinstance(exc, httpx.ProtocolError):
        return repository.OUTCOME_ERROR, "protocol error: the answer was not valid HTTP"
    if isinstance(exc, httpx.NetworkError):
        return repository.OUTCOME_ERROR, f"connection lost ({type(exc).__name__})"
    return repository.OUTCOME_ERROR, f"not sent ({type(exc).__name__})"


def _classify(status: int) -> str:
    if 200 <= status < 300:
        return repository.OUTCOME_DELIVERED
    if status == httpx.codes.GONE:
        return repository.OUTCOME_GONE
    return repository.OUTCOME_FAILED


async def post_webhook(
    client: httpx.AsyncClient, claimed: ClaimedDelivery, *, timeout: float
) -> AttemptResult:
    """POST ``claimed``'s body, signed now, and classify the answer; never raises for I/O."""
    started_at = datetime.now(UTC)
    clock = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - clock) * 1000, 3)

    try:
        headers = webhook_headers(
            claimed.secrets, claimed.webhook_id, int(started_at.timestamp()), claimed.body
        )
    except InvalidSecret as exc:
        return AttemptResult(started_at, 0.0, repository.OUTCOME_ERROR, error=f"not sent: {exc}")
    try:
        # The whole exchange is bounded, not just each read: a receiver trickling bytes
        # must not hold a slot (and outlive our lease).
        async with (
            asyncio.timeout(timeout),
            client.stream(
                "POST",
                claimed.url,
                content=claimed.body.encode(),
                headers=headers,
                timeout=timeout,
            ) as response,
        ):
            await _drain(response)
    except Exception as exc:  # refused, connection refused, DNS, TLS, timeout: all retried
        outcome, error = describe_failure(exc, timeout=timeout)
        return AttemptResult(started_at, elapsed_ms(), outcome, error=error)
    outcome = _classify(response.status_code)
    return AttemptResult(
        started_at,
        elapsed_ms(),
        outcome,
        status_code=response.status_code,
        error=None
        if outcome == repository.OUTCOME_DELIVERED
        else describe_status(response.status_code),
        retry_after=response.headers.get("retry-after"),
    )
