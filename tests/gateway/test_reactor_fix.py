"""The reactor fix removes pynetdicom 3.0.4's pause race, shown by replaying the race.

The race needs one interleaving: the reactor's checkpoint wait returns, and before the
reactor marks itself running a sender pauses it (clears the checkpoint, sees "paused")
and its C-STORE response arrives on the queue. The checkpoint below makes exactly that
happen on the reactor's first wait, so no timing is involved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pynetdicom
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from dicom_gateway import reactor_fix

SUCCESS = 0x0000
CONTEXT_ID = 1


class SenderPausesAfterWake(threading.Event):
    """A set checkpoint; a sender pauses the reactor right after its first wait returns."""

    def __init__(self, assoc: Association, response: C_STORE) -> None:
        super().__init__()
        self.set()
        self._assoc = assoc
        self._response = response
        self._waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self._waits += 1
        if self._waits == 1:
            woke = super().wait(timeout)
            self.clear()  # the sender pauses the reactor ...
            self._assoc.dimse.msg_queue.put((CONTEXT_ID, self._response))  # ... and is answered
            return woke
        # Paused for good now: end the loop instead of blocking the test.
        self._assoc._kill = True
        return False


def _sender_response_after_race(run_reactor: Callable[[Any], None]) -> object:
    """Run one reactor loop through the race; what the sender then finds on the queue."""
    assoc = Association(AE(), "requestor")
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 1
    response.Status = SUCCESS
    assoc._reactor_checkpoint = SenderPausesAfterWake(assoc, response)
    reactor = threading.Thread(target=run_reactor, args=(assoc,), daemon=True)
    reactor.start()
    reactor.join(timeout=10)
    assert not reactor.is_alive()
    _, found = assoc.dimse.get_msg(block=False)
    return found


def test_the_fix_is_written_for_the_installed_pynetdicom() -> None:
    assert pynetdicom.__version__ == reactor_fix.FIXED_VERSION


def test_pynetdicoms_reactor_takes_the_senders_response_in_the_race() -> None:
    # If this fails, pynetdicom fixed the race itself: drop reactor_fix.
    assert _sender_response_after_race(reactor_fix.PYNETDICOM_RUN_REACTOR) is None


def test_the_fixed_reactor_leaves_the_senders_response_to_the_sender() -> None:
    found = _sender_response_after_race(reactor_fix._run_reactor)

    assert isinstance(found, C_STORE)
    assert found.Status == SUCCESS
