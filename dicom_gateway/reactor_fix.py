"""A fix for a race in pynetdicom 3.0's association reactor (installed by the gateway).

While a thread sends on an association (C-STORE sub-operations of a C-MOVE or C-GET),
it pauses the association's reactor so the reactor does not take the peer's responses
off the queue. The reactor marks itself paused, waits for the checkpoint, then marks
itself running and reads the queue. If the checkpoint was still set when it waited and
the sender cleared it just after, the sender sees "paused", sends, and the reactor, now
running, takes the sender's C-STORE response: pynetdicom logs "Received unexpected
C-STORE service message", the sender times out and the sub-operation fails. Measured on
a loaded 2-core machine: about 1 move in 4 of a 300-instance study had failures
(``bench/README.md``, retrieval benchmark). The fix re-checks the checkpoint after
waking, so a reactor paused in that window goes back to waiting instead of reading.

``_run_reactor`` below is pynetdicom 3.0.4's (MIT licence) with that one check added.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import pynetdicom
from pynetdicom import evt
from pynetdicom.association import Association

LOGGER = logging.getLogger("pynetdicom.assoc")
# The exact release whose loop this copies (pinned in pyproject.toml and requirements.lock).
FIXED_VERSION = "3.0.4"
_INSTALLED = "_worklist_reactor_fixed"
# pynetdicom's own loop, kept so tests can show the race it has and this fix removes.
PYNETDICOM_RUN_REACTOR = Association._run_reactor


def _run_reactor(self: Any) -> None:
    """pynetdicom's acceptor/requestor reactor loop, with the checkpoint re-checked."""
    self._is_paused = False
    while not self._kill:
        time.sleep(0.001)
        self._is_paused = True
        self._reactor_checkpoint.wait()
        self._is_paused = False
        if not self._reactor_checkpoint.is_set():
            continue  # a sender paused us meanwhile: its messages are not ours to read

        context_id, msg = self.dimse.get_msg(block=False)
        if msg:
            self._serve_request(msg, cast(int, context_id))

        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            LOGGER.info("Association Released")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return

        if self.acse.is_aborted():
            log_msg = "Association Aborted"
            if self.acse.is_aborted("a-p-abort"):
                log_msg += " (A-P-ABORT)"
            LOGGER.info(log_msg)
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return

        if not self.dul.is_alive():
            self.kill()
            return

        if self.dul.idle_timer_expired():
            LOGGER.error("Network timeout reached")
            if self.network_timeout_response == "A-RELEASE":
                self._is_paused = True
                self._reactor_checkpoint.wait()
                self.release()
                self._is_paused = False
            else:
                self.abort()
            self.kill()
            return


def install_reactor_fix() -> bool:
    """Replace pynetdicom's reactor loop with the fixed one (only on versions it matches)."""
    if getattr(Association, _INSTALLED, False):
        return True
    if pynetdicom.__version__ != FIXED_VERSION:
        logging.getLogger(__name__).warning(
            "pynetdicom reactor fix not applied to this version",
            extra={"version": pynetdicom.__version__},
        )
        return False
    Association._run_reactor = _run_reactor  # type: ignore[method-assign]
    setattr(Association, _INSTALLED, True)
    return True
