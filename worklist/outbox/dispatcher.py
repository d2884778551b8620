"""The webhook dispatcher: delivers pending outbox deliveries (runs in the worker)."""

from __future__ import annotations

import threading

from worklist.config import Settings


def run_dispatcher(settings: Settings, stop: threading.Event) -> None:
    """Deliver webhooks until ``stop`` is set (blocking; runs its own event loop)."""
    raise NotImplementedError("the dispatcher is being written")
