"""Retry timing: exponential backoff with jitter, a cap instead of a last attempt, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worklist.outbox.retry import (
    MAX_RETRY_AFTER_SECONDS,
    backoff_seconds,
    parse_retry_after,
    retry_delay,
)


@pytest.mark.parametrize(("attempts", "full"), [(1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0)])
def test_backoff_doubles_per_attempt_with_jitter_in_the_upper_half(
    attempts: int, full: float
) -> None:
    rng = random.Random(7)
    samples = [backoff_seconds(attempts, base=5, cap=3600, rng=rng) for _ in range(500)]
    assert all(full / 2 <= s <= full for s in samples)
    # Jitter spreads retries out rather than always picking one value.
    assert max(samples) - min(samples) > full / 4


def test_backoff_is_capped_and_never_gives_up() -> None:
    rng = random.Random(1)
    for attempts in (20, 100, 10_000):
        delay = backoff_seconds(attempts, base=5, cap=3600, rng=rng)
        assert 1800 <= delay <= 3600


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 120 ") == 120.0
    http_date = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(http_date, now=now) == pytest.approx(90.0)


def test_retry_after_in_the_past_is_now_and_garbage_is_ignored() -> None:
    now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    past = format_datetime(now - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_retry_after_is_capped_at_a_day() -> None:
    assert parse_retry_after("99999999") == MAX_RETRY_AFTER_SECONDS


def test_retry_after_is_a_floor_on_the_backoff() -> None:
    rng = random.Random(3)
    assert retry_delay(1, base=0.05, cap=1, retry_after=2.0, rng=rng) == 2.0
    # A shorter Retry-After does not shorten the backoff.
    delay = retry_delay(5, base=1, cap=60, retry_after=0.1, rng=rng)
    assert 8 <= delay <= 16
