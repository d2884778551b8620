"""One webhook POST and what came of it (no database here)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from worklist.outbox import repository
from worklist.outbox.repository import ClaimedDelivery
from worklist.outbox.signing import InvalidSecret, webhook_headers

# Enough of a reply body to explain a failure; the rest is not read.
MAX_REPLY_BYTES = 64 * 1024
_ERROR_SNIPPET = 200


@dataclass(frozen=True)
class AttemptResult:
    """What one POST did: outcome as stored, status, error text and ``Retry-After``."""

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


def make_client(*, concurrency: int) -> httpx.AsyncClient:
    """The HTTP client of a dispatcher: no redirects (3xx is a failure), no env proxies."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def _read_some(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_REPLY_BYTES:
            break
    return b"".join(chunks)


def _describe_status(response: httpx.Response, body: bytes) -> str:
    text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    if response.is_redirect:
        text += f" (redirect to {response.headers.get('location', '?')} not followed)"
    snippet = body[:_ERROR_SNIPPET].decode("utf-8", errors="replace").strip()
    return f"{text}: {snippet}" if snippet else text


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
            body = await _read_some(response)
    except (TimeoutError, httpx.TimeoutException):
        return AttemptResult(
            started_at,
            elapsed_ms(),
            repository.OUTCOME_TIMEOUT,
            error=f"no answer within {timeout:g}s",
        )
    except Exception as exc:  # connection refused, DNS, TLS, bad URL: all retried
        return AttemptResult(
            started_at,
            elapsed_ms(),
            repository.OUTCOME_ERROR,
            error=f"{type(exc).__name__}: {exc}".strip().rstrip(":"),
        )
    outcome = _classify(response.status_code)
    return AttemptResult(
        started_at,
        elapsed_ms(),
        outcome,
        status_code=response.status_code,
        error=None if outcome == repository.OUTCOME_DELIVERED else _describe_status(response, body),
        retry_after=response.headers.get("retry-after"),
    )
